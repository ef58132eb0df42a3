//! Attacks on the token, against a service configured as in production: an RSA public key,
//! an issuer and an audience, no shared secret. Every one is a 401 with the JSON body.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use csbs_test_support::TestDatabase;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{assert_error, test_settings, TestApp};

fn key(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/keys")
        .join(name)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(changes: Value) -> Value {
    let mut claims = json!({"sub": "attacker", "project_id": "tenant-a", "roles": ["admin"],
        "exp": now() + 600, "iat": now(), "iss": "https://iam.test", "aud": "csbs"});
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn rs256(private_key: &str, claims: &Value) -> String {
    let pem = std::fs::read(key(private_key)).unwrap();
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

#[actix_web::test]
async fn forged_expired_and_misdirected_tokens_are_401() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(db.url());
    settings.auth.hmac_secret = None;
    settings.auth.public_key_files = vec![key("rsa_public.pem")];
    settings.auth.issuer = Some("https://iam.test".into());
    settings.auth.audience = Some("csbs".into());
    let app = TestApp::spawn_with(settings, Some(db), "sqlite, RSA keys".into()).await;
    let url = "/v1/tenant-a/checkpoint_items/count";

    let good = rs256("rsa_private.pem", &claims(json!({})));
    assert_eq!(
        app.get(url, &good).await.status(),
        200,
        "the legitimate token works"
    );

    let body_of = |token: &str| token.split('.').nth(1).unwrap().to_owned();
    let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let public_pem = std::fs::read(key("rsa_public.pem")).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(claims(json!({"project_id": "tenant-b"})).to_string());
        format!("{}.{}.{}", parts[0], forged, parts[2])
    };
    let attacks = vec![
        ("alg none", format!("{header_none}.{}.", body_of(&good))),
        (
            "alg none with the real signature",
            format!(
                "{header_none}.{}.{}",
                body_of(&good),
                good.split('.').nth(2).unwrap()
            ),
        ),
        ("HS256 signed with the RSA public key", confused),
        ("tampered payload", tampered),
        ("another key", rs256("rsa2_private.pem", &claims(json!({})))),
        (
            "expired",
            rs256("rsa_private.pem", &claims(json!({"exp": now() - 3600}))),
        ),
        (
            "not yet valid",
            rs256("rsa_private.pem", &claims(json!({"nbf": now() + 3600}))),
        ),
        (
            "wrong issuer",
            rs256(
                "rsa_private.pem",
                &claims(json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "wrong audience",
            rs256("rsa_private.pem", &claims(json!({"aud": "other"}))),
        ),
        (
            "no expiry",
            rs256("rsa_private.pem", &claims(json!({"exp": null}))),
        ),
        (
            "oversized",
            rs256(
                "rsa_private.pem",
                &claims(json!({"padding": "x".repeat(9000)})),
            ),
        ),
        ("garbage", "not-a-token".to_owned()),
        ("empty segments", "..".to_owned()),
        ("binary junk", "\u{1}\u{2}".to_owned()),
    ];
    for (name, token) in attacks {
        let response = app
            .client
            .get(format!("{}{url}", app.address))
            .header("X-Auth-Token", token.as_str())
            .send()
            .await;
        let Ok(response) = response else {
            // reqwest refuses to send some header bytes at all: nothing reached the service.
            continue;
        };
        let body = assert_error(response, 401, "APIGW.0301").await;
        assert!(
            !body["error_msg"].as_str().unwrap().contains("BEGIN"),
            "{name}: no key material in {body}"
        );
    }
    let response = app
        .client
        .get(format!("{}{url}", app.address))
        .header(
            "Authorization",
            format!("Basic {}", URL_SAFE_NO_PAD.encode("user:pass")),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "APIGW.0301").await;
}
