//! Token validation end to end, through the public API only, with the fixed test keys in
//! `tests/keys/` (made with `openssl genpkey`; `jwks.json` holds the same public keys).

// The helpers below are test code too: a broken fixture should panic right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use csbs_auth::{
    extract_token, mint_hs256, AuthError, AuthSettings, Claims, KeyError, RoleNames,
    TokenValidator, MAX_TOKEN_BYTES,
};
use csbs_domain::ProjectId;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{json, Value};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Good claims for user alice in project p1, with `changes` applied (`null` removes a claim).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "sub": "alice",
        "project_id": "p1",
        "roles": ["member"],
        "exp": now() + 300,
        "iat": now(),
    });
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// Signs `claims` with `alg`; `private_key` names the key fixture (ignored for HMAC, which uses
/// [`SECRET`]).
fn sign_with(alg: Algorithm, private_key: &str, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg.family() {
        AlgorithmFamily::Hmac => EncodingKey::from_secret(SECRET.as_bytes()),
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&key_bytes(private_key)).unwrap(),
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&key_bytes(private_key)).unwrap(),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&key_bytes(private_key)).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign_with(Algorithm::HS256, "", None, claims)
}

fn rs256(claims: &Value) -> String {
    sign_with(Algorithm::RS256, "rsa_private.pem", None, claims)
}

/// `token` with its payload replaced by `claims`, signature kept.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2])
}

/// `token` with its header replaced, payload and signature kept.
fn with_header(token: &str, header: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", b64(header), parts[1], parts[2])
}

fn hmac_settings() -> AuthSettings {
    AuthSettings {
        hmac_secret: Some(SecretString::from(SECRET)),
        ..AuthSettings::default()
    }
}

fn pem_settings(files: &[&str]) -> AuthSettings {
    AuthSettings {
        public_key_files: files.iter().map(|f| key_path(f)).collect(),
        ..AuthSettings::default()
    }
}

fn jwks_settings() -> AuthSettings {
    AuthSettings {
        jwks_file: Some(key_path("jwks.json")),
        ..AuthSettings::default()
    }
}

fn issuer_audience_settings() -> AuthSettings {
    AuthSettings {
        issuer: Some("https://idp.example".to_owned()),
        audience: Some("csbs".to_owned()),
        ..hmac_settings()
    }
}

struct Validators {
    hmac: TokenValidator,
    rsa: TokenValidator,
    pem: TokenValidator,
    jwks: TokenValidator,
    iss_aud: TokenValidator,
}

fn validators() -> Validators {
    let build = |settings: AuthSettings| TokenValidator::from_settings(&settings).unwrap();
    Validators {
        hmac: build(hmac_settings()),
        rsa: build(pem_settings(&["rsa_public.pem"])),
        pem: build(pem_settings(&[
            "rsa_public_pkcs1.pem",
            "ec_public.pem",
            "ec384_public.pem",
            "ed_public.pem",
        ])),
        jwks: build(jwks_settings()),
        iss_aud: build(issuer_audience_settings()),
    }
}

#[test]
fn good_tokens_pass() {
    let v = validators();
    let good = claims(json!({}));
    let rows: Vec<(&str, &TokenValidator, String)> = vec![
        ("HS256", &v.hmac, hs256(&good)),
        (
            "HS384",
            &v.hmac,
            sign_with(Algorithm::HS384, "", None, &good),
        ),
        (
            "HS512",
            &v.hmac,
            sign_with(Algorithm::HS512, "", None, &good),
        ),
        ("RS256 PEM", &v.rsa, rs256(&good)),
        (
            "RS512 PEM",
            &v.rsa,
            sign_with(Algorithm::RS512, "rsa_private.pem", None, &good),
        ),
        (
            "PS256 PEM",
            &v.rsa,
            sign_with(Algorithm::PS256, "rsa_private.pem", None, &good),
        ),
        ("RS256 PKCS#1 PEM", &v.pem, rs256(&good)),
        (
            "ES256 PEM",
            &v.pem,
            sign_with(Algorithm::ES256, "ec_private.pem", None, &good),
        ),
        (
            "ES384 PEM",
            &v.pem,
            sign_with(Algorithm::ES384, "ec384_private.pem", None, &good),
        ),
        (
            "EdDSA PEM",
            &v.pem,
            sign_with(Algorithm::EdDSA, "ed_private.pem", None, &good),
        ),
        (
            "RS256 JWKS by kid",
            &v.jwks,
            sign_with(Algorithm::RS256, "rsa_private.pem", Some("rsa-1"), &good),
        ),
        ("RS256 JWKS without kid", &v.jwks, rs256(&good)),
        (
            "RS256 JWKS, unknown kid",
            &v.jwks,
            sign_with(Algorithm::RS256, "rsa_private.pem", Some("rotated"), &good),
        ),
        (
            "PS384 JWKS second key by kid",
            &v.jwks,
            sign_with(Algorithm::PS384, "rsa2_private.pem", Some("rsa-2"), &good),
        ),
        (
            "ES256 JWKS by kid",
            &v.jwks,
            sign_with(Algorithm::ES256, "ec_private.pem", Some("ec-1"), &good),
        ),
        (
            "EdDSA JWKS without kid",
            &v.jwks,
            sign_with(Algorithm::EdDSA, "ed_private.pem", None, &good),
        ),
        (
            "issuer and audience",
            &v.iss_aud,
            hs256(&claims(
                json!({"iss": "https://idp.example", "aud": "csbs"}),
            )),
        ),
        (
            "audience in a list",
            &v.iss_aud,
            hs256(&claims(
                json!({"iss": "https://idp.example", "aud": ["other", "csbs"]}),
            )),
        ),
        (
            "aud not checked when not configured",
            &v.hmac,
            hs256(&claims(json!({"aud": "anyone", "iss": "anybody"}))),
        ),
        (
            "expired within the leeway",
            &v.hmac,
            hs256(&claims(json!({"exp": now() - 10}))),
        ),
        (
            "nbf within the leeway",
            &v.hmac,
            hs256(&claims(json!({"nbf": now() + 10}))),
        ),
        (
            "nbf in the past",
            &v.hmac,
            hs256(&claims(json!({"nbf": now() - 10}))),
        ),
        (
            "fractional exp, nbf and iat (RFC 7519 NumericDate)",
            &v.hmac,
            hs256(&claims(
                json!({"exp": now() as f64 + 300.5, "nbf": now() as f64 - 0.25, "iat": now() as f64 - 1.5}),
            )),
        ),
        (
            "no iat, no roles",
            &v.hmac,
            hs256(&claims(json!({"iat": null, "roles": null}))),
        ),
        (
            "unknown claims and header fields",
            &v.hmac,
            hs256(&claims(
                json!({"scope": "x", "realm_access": {"roles": ["y"]}}),
            )),
        ),
    ];
    for (name, validator, token) in rows {
        let caller = validator
            .validate(&token)
            .unwrap_or_else(|err| panic!("{name}: {err:?}"));
        assert_eq!(caller.user, "alice", "{name}");
        assert_eq!(caller.project_id.as_ref().unwrap().as_str(), "p1", "{name}");
        assert!(!caller.is_admin() && !caller.is_service(), "{name}");
    }
}

#[test]
fn bad_tokens_are_refused() {
    let v = validators();
    let good = claims(json!({}));
    let good_hs256 = hs256(&good);
    let good_rs256 = rs256(&good);
    let unsigned = |header: &str| format!("{}.{}.", b64(header), b64(good.to_string()));
    let invalid = |reason: &str| AuthError::InvalidClaims(reason.to_owned());
    let unsupported = |alg: &str| AuthError::UnsupportedAlgorithm(alg.to_owned());
    let oversized = hs256(&claims(json!({"padding": "x".repeat(MAX_TOKEN_BYTES)})));

    let rows: Vec<(&str, &TokenValidator, String, AuthError)> = vec![
        // alg none, unsigned or with some signature, whatever the keys.
        (
            "alg none",
            &v.hmac,
            unsigned(r#"{"alg":"none","typ":"JWT"}"#),
            unsupported("none"),
        ),
        (
            "alg none with a signature",
            &v.rsa,
            format!("{}sig", unsigned(r#"{"alg":"none","typ":"JWT"}"#)),
            unsupported("none"),
        ),
        (
            "alg None",
            &v.jwks,
            unsigned(r#"{"alg":"None"}"#),
            unsupported("None"),
        ),
        // Algorithm confusion: HS256 "signed" with the RSA public key as the secret.
        (
            "HS256 with the RSA public key as secret",
            &v.rsa,
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(&key_bytes("rsa_public.pem")),
            )
            .unwrap(),
            unsupported("HS256"),
        ),
        (
            "HS256 with the JWKS as secret",
            &v.jwks,
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(&key_bytes("jwks.json")),
            )
            .unwrap(),
            unsupported("HS256"),
        ),
        (
            "RS256 with only a secret",
            &v.hmac,
            good_rs256.clone(),
            unsupported("RS256"),
        ),
        (
            "ES384 with only a P-256 key",
            &v.jwks,
            sign_with(Algorithm::ES384, "ec384_private.pem", None, &good),
            unsupported("ES384"),
        ),
        (
            "EdDSA with only RSA",
            &v.rsa,
            sign_with(Algorithm::EdDSA, "ed_private.pem", None, &good),
            unsupported("EdDSA"),
        ),
        (
            "unknown algorithm",
            &v.hmac,
            unsigned(r#"{"alg":"HS1024"}"#),
            unsupported("HS1024"),
        ),
        // Bad signatures.
        (
            "HS256 with another secret",
            &v.hmac,
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(b"another-secret-0123456789abcdef-0123"),
            )
            .unwrap(),
            AuthError::BadSignature,
        ),
        (
            "RS256 by an unknown key",
            &v.rsa,
            sign_with(Algorithm::RS256, "rsa2_private.pem", None, &good),
            AuthError::BadSignature,
        ),
        (
            "kid of one key, signed by another",
            &v.jwks,
            sign_with(Algorithm::RS256, "rsa2_private.pem", Some("rsa-1"), &good),
            AuthError::BadSignature,
        ),
        (
            "JWKS key with alg RS256 used for PS256",
            &v.jwks,
            sign_with(Algorithm::PS256, "rsa_private.pem", Some("rsa-1"), &good),
            AuthError::BadSignature,
        ),
        (
            "signature removed",
            &v.hmac,
            format!("{}.", good_hs256.rsplit_once('.').unwrap().0),
            AuthError::BadSignature,
        ),
        (
            "HS256 signature under an HS512 header",
            &v.hmac,
            with_header(&good_hs256, r#"{"alg":"HS512","typ":"JWT"}"#),
            AuthError::BadSignature,
        ),
        // Tampered payloads.
        (
            "HS256 payload tampered",
            &v.hmac,
            with_payload(&good_hs256, &claims(json!({"project_id": "p2"}))),
            AuthError::BadSignature,
        ),
        (
            "RS256 payload tampered",
            &v.rsa,
            with_payload(&good_rs256, &claims(json!({"roles": ["admin"]}))),
            AuthError::BadSignature,
        ),
        // Time.
        (
            "expired",
            &v.hmac,
            hs256(&claims(json!({"exp": now() - 3600}))),
            AuthError::Expired,
        ),
        (
            "expired beyond the leeway",
            &v.hmac,
            hs256(&claims(json!({"exp": now() - 40}))),
            AuthError::Expired,
        ),
        (
            "fractional exp in the past",
            &v.hmac,
            hs256(&claims(json!({"exp": now() as f64 - 3600.5}))),
            AuthError::Expired,
        ),
        (
            "fractional nbf in the future",
            &v.hmac,
            hs256(&claims(json!({"nbf": now() as f64 + 3600.5}))),
            AuthError::NotYetValid,
        ),
        (
            "nbf in the future",
            &v.hmac,
            hs256(&claims(json!({"nbf": now() + 3600}))),
            AuthError::NotYetValid,
        ),
        (
            "iat in the future",
            &v.hmac,
            hs256(&claims(json!({"iat": now() + 3600}))),
            AuthError::NotYetValid,
        ),
        // Issuer and audience.
        (
            "wrong issuer",
            &v.iss_aud,
            hs256(&claims(
                json!({"iss": "https://evil.example", "aud": "csbs"}),
            )),
            AuthError::WrongIssuer,
        ),
        (
            "missing issuer",
            &v.iss_aud,
            hs256(&claims(json!({"aud": "csbs"}))),
            AuthError::WrongIssuer,
        ),
        (
            "wrong audience",
            &v.iss_aud,
            hs256(&claims(
                json!({"iss": "https://idp.example", "aud": "other"}),
            )),
            AuthError::WrongAudience,
        ),
        (
            "audience list without us",
            &v.iss_aud,
            hs256(&claims(
                json!({"iss": "https://idp.example", "aud": ["a", "b"]}),
            )),
            AuthError::WrongAudience,
        ),
        (
            "missing audience",
            &v.iss_aud,
            hs256(&claims(json!({"iss": "https://idp.example"}))),
            AuthError::WrongAudience,
        ),
        // Size: refused before decoding, whatever the content.
        (
            "oversized, validly signed",
            &v.hmac,
            oversized,
            AuthError::TooLarge,
        ),
        (
            "oversized garbage",
            &v.hmac,
            "a".repeat(MAX_TOKEN_BYTES + 1),
            AuthError::TooLarge,
        ),
        (
            "garbage at the size limit",
            &v.hmac,
            "a".repeat(MAX_TOKEN_BYTES),
            AuthError::Malformed,
        ),
        // Garbage.
        ("empty", &v.hmac, String::new(), AuthError::Malformed),
        (
            "one word",
            &v.hmac,
            "garbage".to_owned(),
            AuthError::Malformed,
        ),
        (
            "three dots",
            &v.hmac,
            "...".to_owned(),
            AuthError::Malformed,
        ),
        ("a.b.c", &v.hmac, "a.b.c".to_owned(), AuthError::Malformed),
        (
            "not base64",
            &v.hmac,
            "eyJ!.eyJ.sig".to_owned(),
            AuthError::Malformed,
        ),
        (
            "space inside",
            &v.hmac,
            format!("Bearer {good_hs256}"),
            AuthError::Malformed,
        ),
        (
            "non-ASCII",
            &v.hmac,
            "tökén.ä.ö".to_owned(),
            AuthError::Malformed,
        ),
        (
            "four parts",
            &v.hmac,
            format!("{good_hs256}.extra"),
            AuthError::Malformed,
        ),
        (
            "header not JSON",
            &v.hmac,
            with_header(&good_hs256, "HS256"),
            AuthError::Malformed,
        ),
        // Claims.
        (
            "missing sub",
            &v.hmac,
            hs256(&claims(json!({"sub": null}))),
            invalid("claim 'sub' is missing"),
        ),
        (
            "missing project_id",
            &v.hmac,
            hs256(&claims(json!({"project_id": null}))),
            invalid("claim 'project_id' is missing"),
        ),
        (
            "missing exp",
            &v.hmac,
            hs256(&claims(json!({"exp": null}))),
            invalid("claim 'exp' is missing or not a number of seconds"),
        ),
        (
            "exp not a number",
            &v.hmac,
            hs256(&claims(json!({"exp": "tomorrow"}))),
            invalid("claim 'exp' is missing or not a number of seconds"),
        ),
        (
            "nbf not a number",
            &v.hmac,
            hs256(&claims(json!({"nbf": "today"}))),
            invalid("claim 'nbf' must be a number of seconds"),
        ),
        (
            "project_id not a valid project id",
            &v.hmac,
            hs256(&claims(json!({"project_id": "../other"}))),
            invalid("claim 'project_id' may contain only letters, digits, '_' and '-'"),
        ),
        (
            "project_id too long",
            &v.hmac,
            hs256(&claims(json!({"project_id": "a".repeat(65)}))),
            invalid("claim 'project_id' must be 1 to 64 characters long"),
        ),
        (
            "roles not a list",
            &v.hmac,
            hs256(&claims(json!({"roles": "admin"}))),
            invalid("claim 'roles' must be a list of strings"),
        ),
        (
            "claims not an object",
            &v.hmac,
            hs256(&json!(["sub", "alice"])),
            invalid("the claims are not a JSON object"),
        ),
    ];
    for (name, validator, token, expected) in rows {
        assert_eq!(validator.validate(&token), Err(expected), "{name}");
    }
}

#[test]
fn roles_come_from_the_token_and_the_settings() {
    let v = validators();
    let token = hs256(&claims(json!({"roles": ["admin", "csbs_service"]})));
    let caller = v.hmac.validate(&token).unwrap();
    assert_eq!(caller.roles, ["admin", "csbs_service"]);
    assert!(caller.is_admin() && caller.is_service());
    let p2 = ProjectId::parse("project_id", "p2").unwrap();
    assert!(caller.authorize_project(&p2).is_ok());
    assert!(caller.authorize_all_tenants().is_ok());
    assert!(caller.authorize_ingest().is_ok());

    let member = v.hmac.validate(&hs256(&claims(json!({})))).unwrap();
    assert_eq!(
        member.authorize_project(&p2).unwrap_err().to_string(),
        "token project 'p1' does not match path project 'p2'"
    );
    assert!(member.authorize_all_tenants().is_err());
    assert!(member.authorize_ingest().is_err());

    let renamed = TokenValidator::from_settings(&AuthSettings {
        admin_role: RoleNames::new(["cloud_admin"]),
        service_role: RoleNames::new(["engine"]),
        ..hmac_settings()
    })
    .unwrap();
    let caller = renamed.validate(&token).unwrap();
    assert!(!caller.is_admin() && !caller.is_service());
    let token = hs256(&claims(json!({"roles": ["cloud_admin", "engine"]})));
    let caller = renamed.validate(&token).unwrap();
    assert!(caller.is_admin() && caller.is_service());
}

#[test]
fn leeway_is_configurable() {
    let strict = TokenValidator::from_settings(&AuthSettings {
        leeway_seconds: 0,
        ..hmac_settings()
    })
    .unwrap();
    let just_expired = hs256(&claims(json!({"exp": now() - 2})));
    assert_eq!(strict.validate(&just_expired), Err(AuthError::Expired));
    assert!(validators().hmac.validate(&just_expired).is_ok());
}

#[test]
fn minted_tokens_validate() {
    let project = ProjectId::parse("project_id", "0123456789abcdef0123456789abcdef").unwrap();
    let claims = Claims::new(
        "ops",
        &project,
        vec!["csbs_service".to_owned()],
        Duration::from_secs(600),
    );
    let token = mint_hs256(&SecretString::from(SECRET), &claims).unwrap();
    let caller = validators()
        .hmac
        .validate(extract_token(None, Some(&format!("Bearer {token}"))).unwrap())
        .unwrap();
    assert_eq!(caller.user, "ops");
    assert_eq!(caller.project_id, Some(project));
    assert!(caller.is_service());

    let with_iss_aud = Claims {
        iss: Some("https://idp.example".to_owned()),
        aud: Some("csbs".to_owned()),
        ..claims
    };
    let token = mint_hs256(&SecretString::from(SECRET), &with_iss_aud).unwrap();
    assert!(validators().iss_aud.validate(&token).is_ok());
}

fn load_error(settings: AuthSettings) -> KeyError {
    TokenValidator::from_settings(&settings).unwrap_err()
}

/// Writes `content` to a fresh file under the test target directory.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("csbs-auth-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn unusable_settings_are_refused_at_start_up() {
    assert!(matches!(
        load_error(AuthSettings::default()),
        KeyError::NoKeys
    ));
    assert!(matches!(
        load_error(AuthSettings {
            hmac_secret: Some(SecretString::from("too-short")),
            ..AuthSettings::default()
        }),
        KeyError::WeakHmacSecret
    ));
    for (setting, settings) in [
        (
            "admin_role",
            AuthSettings {
                admin_role: RoleNames::new([""]),
                ..hmac_settings()
            },
        ),
        (
            "service_role",
            AuthSettings {
                service_role: RoleNames::new(["member", " "]),
                ..hmac_settings()
            },
        ),
        (
            "issuer",
            AuthSettings {
                issuer: Some(String::new()),
                ..hmac_settings()
            },
        ),
        (
            "audience",
            AuthSettings {
                audience: Some(String::new()),
                ..hmac_settings()
            },
        ),
    ] {
        match load_error(settings) {
            KeyError::EmptySetting { setting: got } => assert_eq!(got, setting),
            other => panic!("{setting}: {other:?}"),
        }
    }
    assert!(matches!(
        load_error(AuthSettings {
            leeway_seconds: 301,
            ..hmac_settings()
        }),
        KeyError::LeewayTooLarge
    ));
}

#[test]
fn unusable_key_files_are_refused_with_their_name() {
    let rsa_public = String::from_utf8(key_bytes("rsa_public.pem")).unwrap();
    let ed_public = String::from_utf8(key_bytes("ed_public.pem")).unwrap();
    let pem_rows: Vec<(PathBuf, &str)> = vec![
        (key_path("missing.pem"), "cannot read key file"),
        (key_path("rsa_private.pem"), "holds a private key"),
        (key_path("ec_private.pem"), "holds a private key"),
        (key_path("rsa1024_public.pem"), "RSA key of 1024 bits"),
        (key_path("jwks.json"), "no PEM block found"),
        (
            temp_file("two.pem", &format!("{rsa_public}{ed_public}")),
            "more than one PEM block",
        ),
        (
            temp_file(
                "cert.pem",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            ),
            "holds a certificate",
        ),
        (
            temp_file(
                "garbage.pem",
                "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
            ),
            "not an RSA, EC (P-256, P-384) or Ed25519 public key",
        ),
    ];
    for (path, message) in pem_rows {
        let err = load_error(AuthSettings {
            public_key_files: vec![path.clone()],
            ..hmac_settings()
        });
        let text = err.to_string();
        assert!(text.contains(message), "{}: {text}", path.display());
        assert!(
            text.contains(path.file_name().unwrap().to_str().unwrap()),
            "{text}"
        );
    }

    let okp_short = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#;
    let ec_off_curve = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
        b64([1u8; 32]),
        b64([2u8; 32])
    );
    let rsa_small = format!(
        r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"AQAB"}}]}}"#,
        b64([0xC5u8; 128])
    );
    let jwks_rows: Vec<(PathBuf, &str)> = vec![
        (key_path("missing.json"), "cannot read key file"),
        (key_path("rsa_public.pem"), "not a JWKS document"),
        (
            temp_file("empty.json", r#"{"keys":[]}"#),
            "no usable signature key",
        ),
        (
            temp_file(
                "enc-only.json",
                r#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#,
            ),
            "no usable signature key",
        ),
        (
            temp_file(
                "oct.json",
                r#"{"keys":[{"kty":"oct","kid":"shared","k":"c2VjcmV0"}]}"#,
            ),
            "key 'shared': is a symmetric (oct) key",
        ),
        (
            temp_file("okp-short.json", okp_short),
            "not a valid Ed25519 public key",
        ),
        (
            temp_file("ec-off-curve.json", &ec_off_curve),
            "not a valid point",
        ),
        (
            temp_file("rsa-small.json", &rsa_small),
            "RSA key of 1024 bits",
        ),
        (
            temp_file(
                "alg-mismatch.json",
                &format!(
                    r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"RS256","x":"{}"}}]}}"#,
                    ed25519_x()
                ),
            ),
            "does not fit the key type",
        ),
        (
            temp_file("not-jwk.json", r#"{"keys":[{"kty":"XYZ"}]}"#),
            "key #0: not a JWK",
        ),
    ];
    for (path, message) in jwks_rows {
        let err = load_error(AuthSettings {
            jwks_file: Some(path.clone()),
            ..hmac_settings()
        });
        let text = err.to_string();
        assert!(text.contains(message), "{}: {text}", path.display());
        assert!(
            text.contains(path.file_name().unwrap().to_str().unwrap()),
            "{text}"
        );
    }
}

/// The `x` of the Ed25519 key in `jwks.json`.
fn ed25519_x() -> String {
    let jwks: Value = serde_json::from_slice(&key_bytes("jwks.json")).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == "ed-1")
        .unwrap()["x"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn skippable_jwks_keys_are_skipped() {
    // jwks.json holds an encryption key (use: enc) next to the signature keys; with P-521 and
    // X25519 keys added, the file still loads.
    let mut jwks: Value = serde_json::from_slice(&key_bytes("jwks.json")).unwrap();
    let keys = jwks["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "EC", "crv": "P-521", "kid": "big", "x": "AA", "y": "AA"}));
    keys.push(json!({"kty": "OKP", "crv": "X25519", "kid": "dh", "x": "AA"}));
    keys.push(
        json!({"kty": "RSA", "alg": "RSA-OAEP-256", "kid": "enc-2", "n": "AQAB", "e": "AQAB"}),
    );
    let path = temp_file("skippable.json", &jwks.to_string());
    let validator = TokenValidator::from_settings(&AuthSettings {
        jwks_file: Some(path),
        ..AuthSettings::default()
    })
    .unwrap();
    assert_eq!(validator.key_count(), 4);
    let token = sign_with(
        Algorithm::RS256,
        "rsa_private.pem",
        Some("rsa-1"),
        &claims(json!({})),
    );
    assert!(validator.validate(&token).is_ok());
}

#[test]
fn debug_output_holds_no_secret() {
    let validator = validators().hmac;
    let debug = format!("{validator:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("hmac_secret"), "{debug}");
    let debug = format!("{:?}", hmac_settings());
    assert!(!debug.contains(SECRET), "{debug}");
}
