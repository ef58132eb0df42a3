//! The first look at a token: its shape and its header (algorithm and key id), before any key
//! is chosen or any signature checked.
//!
//! `jsonwebtoken` would refuse `alg: none` too, but only as a JSON error; reading the header
//! here lets the refusal say which algorithm was refused, and lets the validator pick keys by
//! `alg` and `kid`.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::AuthError;

/// What the header of a well-shaped token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    /// Whether the header names `crit` at all: even `"crit": null` or `[]`, which RFC 7515
    /// does not allow (it must be a non-empty list).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for any value, `null` included; with `#[serde(default)]`, `false` when absent.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Reads the header of a compact JWS (`header.payload.signature`, base64url without padding).
pub(crate) fn read_header(token: &str) -> Result<TokenHeader, AuthError> {
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed);
    }
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    let alg = Algorithm::from_str(&raw.alg)
        .map_err(|_| AuthError::UnsupportedAlgorithm(printable(&raw.alg)))?;
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood, and we understand none;
    // a `crit` that lists none is malformed.
    if raw.crit {
        return Err(AuthError::Malformed);
    }
    // jsonwebtoken reads the header again into its own, stricter type. Refusing here what it
    // would refuse there means a JSON error from it can only be about the claims.
    serde_json::from_slice::<jsonwebtoken::Header>(&json).map_err(|_| AuthError::Malformed)?;
    Ok(TokenHeader { alg, kid: raw.kid })
}

/// The algorithm name as it may be echoed to the client: short and plain ASCII.
fn printable(alg: &str) -> String {
    alg.chars()
        .take(20)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token_with_header(header: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(r#"{"sub":"u"}"#))
    }

    #[test]
    fn good_headers() {
        let read = read_header(&token_with_header(
            r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#,
        ));
        assert_eq!(
            read,
            Ok(TokenHeader {
                alg: Algorithm::RS256,
                kid: Some("k1".to_owned())
            })
        );
        let read = read_header(&token_with_header(r#"{"alg":"EdDSA"}"#));
        assert_eq!(
            read,
            Ok(TokenHeader {
                alg: Algorithm::EdDSA,
                kid: None
            })
        );
        // An unsigned token still has a header to read; the validator refuses it later.
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"HS256"}"#), b64("{}"));
        assert!(read_header(&unsigned).is_ok());
    }

    #[test]
    fn bad_headers() {
        let rows: Vec<(String, AuthError)> = vec![
            (String::new(), AuthError::Malformed),
            ("garbage".to_owned(), AuthError::Malformed),
            ("a.b".to_owned(), AuthError::Malformed),
            ("a.b.c.d".to_owned(), AuthError::Malformed),
            ("..".to_owned(), AuthError::Malformed),
            ("!!!.???.***".to_owned(), AuthError::Malformed),
            ("e30=.e30.c2ln".to_owned(), AuthError::Malformed),
            (
                format!("{} .e30.c2ln", b64(r#"{"alg":"HS256"}"#)),
                AuthError::Malformed,
            ),
            (token_with_header("not json"), AuthError::Malformed),
            (token_with_header("{}"), AuthError::Malformed),
            (token_with_header(r#"{"alg":256}"#), AuthError::Malformed),
            (
                token_with_header(r#"{"alg":"HS256","alg":"none"}"#),
                AuthError::Malformed,
            ),
            (
                token_with_header(r#"{"alg":"HS256","crit":["exp"]}"#),
                AuthError::Malformed,
            ),
            (
                token_with_header(r#"{"alg":"HS256","crit":null}"#),
                AuthError::Malformed,
            ),
            (
                token_with_header(r#"{"alg":"HS256","crit":[]}"#),
                AuthError::Malformed,
            ),
            (
                token_with_header(r#"{"alg":"none","typ":"JWT"}"#),
                AuthError::UnsupportedAlgorithm("none".to_owned()),
            ),
            (
                token_with_header(r#"{"alg":"NONE"}"#),
                AuthError::UnsupportedAlgorithm("NONE".to_owned()),
            ),
            (
                token_with_header(r#"{"alg":"ES512"}"#),
                AuthError::UnsupportedAlgorithm("ES512".to_owned()),
            ),
            (
                token_with_header(r#"{"alg":"bad\nname that is far too long"}"#),
                AuthError::UnsupportedAlgorithm("bad?name?that?is?far".to_owned()),
            ),
        ];
        for (token, expected) in rows {
            assert_eq!(read_header(&token), Err(expected), "{token:?}");
        }
    }
}
