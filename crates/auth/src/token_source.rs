//! Where a request's token comes from: `X-Auth-Token` (what OpenStack-family SDKs send) or
//! `Authorization: Bearer`.

use crate::AuthError;

/// Picks the token out of the request's `X-Auth-Token` and `Authorization` header values.
///
/// `X-Auth-Token` wins when both are present, as every CSBS SDK sends it. A blank header counts
/// as absent, since some clients send an empty `X-Auth-Token` next to a real `Authorization`.
/// The `Bearer` scheme is case-insensitive (RFC 7235 §2.1); surrounding whitespace is ignored.
///
/// Errors: [`AuthError::MissingToken`] when no header carries a token (`Authorization: Bearer`
/// with nothing after it included), [`AuthError::UnsupportedScheme`] for any other
/// `Authorization` scheme such as `Basic`. The token itself is not looked at here.
pub fn extract_token<'a>(
    x_auth_token: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Result<&'a str, AuthError> {
    if let Some(token) = non_blank(x_auth_token) {
        return Ok(token);
    }
    let Some(value) = non_blank(authorization) else {
        return Err(AuthError::MissingToken);
    };
    let (scheme, credentials) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::UnsupportedScheme);
    }
    non_blank(Some(credentials)).ok_or(AuthError::MissingToken)
}

fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources() {
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            Result<&'static str, AuthError>,
        );
        let rows: &[Row] = &[
            (Some("abc"), None, Ok("abc")),
            (None, Some("Bearer abc"), Ok("abc")),
            (None, Some("bearer abc"), Ok("abc")),
            (None, Some("BEARER abc"), Ok("abc")),
            (None, Some("  Bearer   abc  "), Ok("abc")),
            (None, Some("Bearer\tabc"), Ok("abc")),
            (Some(" abc "), None, Ok("abc")),
            // X-Auth-Token wins, whatever Authorization says.
            (Some("from-x"), Some("Bearer from-authz"), Ok("from-x")),
            (Some("from-x"), Some("Basic dXNlcjpwYXNz"), Ok("from-x")),
            // A blank X-Auth-Token is no token.
            (Some(""), Some("Bearer abc"), Ok("abc")),
            (Some("   "), Some("Bearer abc"), Ok("abc")),
            (None, None, Err(AuthError::MissingToken)),
            (Some(""), None, Err(AuthError::MissingToken)),
            (Some(""), Some(""), Err(AuthError::MissingToken)),
            (None, Some(""), Err(AuthError::MissingToken)),
            (None, Some("Bearer"), Err(AuthError::MissingToken)),
            (None, Some("Bearer   "), Err(AuthError::MissingToken)),
            (
                None,
                Some("Basic dXNlcjpwYXNz"),
                Err(AuthError::UnsupportedScheme),
            ),
            (None, Some("Token abc"), Err(AuthError::UnsupportedScheme)),
            (None, Some("Bearerabc"), Err(AuthError::UnsupportedScheme)),
            (None, Some("abc"), Err(AuthError::UnsupportedScheme)),
        ];
        for (x_auth_token, authorization, expected) in rows {
            assert_eq!(
                &extract_token(*x_auth_token, *authorization),
                expected,
                "X-Auth-Token {x_auth_token:?}, Authorization {authorization:?}"
            );
        }
    }
}
