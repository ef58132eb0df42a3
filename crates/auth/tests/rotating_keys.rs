//! Signing keys that change while the service runs: a JWKS URL refreshed in the background (and
//! early for an unknown `kid`), an OpenID Connect issuer's discovery document, key files read
//! again on demand (SIGHUP in the binary), and header fields that point at other keys ignored.
//!
//! The identity provider is a stand-in on a loopback port whose answers the tests change, and
//! which counts what it is asked.

// The helpers below are test code too: a broken fixture should panic right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csbs_auth::{AuthError, AuthSettings, Authenticator, NoObserver, ValidationError};
use csbs_test_support::identity_provider::{jwks_subset, Answer, IdentityProvider};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// A JWKS of the fixture keys named by `kids` (taken from `tests/keys/jwks.json`).
fn jwks(kids: &[&str]) -> Value {
    jwks_subset(&key_path("jwks.json"), kids)
}

/// The private key of each RSA fixture kid.
fn private_key(kid: &str) -> &'static str {
    match kid {
        "rsa-1" => "rsa_private.pem",
        "rsa-2" => "rsa2_private.pem",
        other => panic!("no private key for {other}"),
    }
}

fn claims(issuer: Option<&str>) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({"sub": "alice", "project_id": "p1", "exp": now + 300, "iat": now});
    if let Some(issuer) = issuer {
        claims["iss"] = json!(issuer);
    }
    claims
}

fn sign(header: &Header, kid_key: &str, claims: &Value) -> String {
    let pem = std::fs::read(key_path(private_key(kid_key))).unwrap();
    jsonwebtoken::encode(header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// An RS256 token signed with the fixture key `kid`, naming it.
fn token(kid: &str) -> String {
    token_with_issuer(kid, None)
}

fn token_with_issuer(kid: &str, issuer: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    sign(&header, kid, &claims(issuer))
}

fn url_settings(url: String) -> AuthSettings {
    AuthSettings {
        jwks_url: Some(url),
        jwks_min_refresh_seconds: 1,
        jwks_timeout_ms: 2000,
        ..AuthSettings::default()
    }
}

fn authenticator(settings: &AuthSettings) -> Authenticator {
    Authenticator::from_settings(settings, Arc::new(NoObserver)).unwrap()
}

/// Waits (up to `seconds`) until the authenticator has its first key set.
async fn until_ready(authenticator: &Authenticator, seconds: u64) {
    let started = Instant::now();
    while let Err(reason) = authenticator.readiness() {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "not ready after {seconds} s: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Why the authenticator is not ready, once the reason mentions `expected` (waiting up to five
/// seconds for the fetch that gives it); the last reason when it never does.
async fn unready_reason(authenticator: &Authenticator, expected: &str) -> String {
    let started = Instant::now();
    loop {
        let reason = authenticator.readiness().unwrap_err();
        if reason.contains(expected) || started.elapsed() > Duration::from_secs(5) {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refused(result: Result<csbs_auth::Caller, ValidationError>) -> AuthError {
    match result {
        Err(ValidationError::Rejected(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rotated_key_is_accepted_without_a_restart_and_a_removed_one_refused() {
    // Signed beforehand: RSA signing in a debug build can take longer than the intervals.
    let (old_key, new_key) = (token("rsa-1"), token("rsa-2"));
    let idp = IdentityProvider::start();
    idp.answer("/jwks", Answer::json(&jwks(&["rsa-1"])));
    let auth = authenticator(&url_settings(idp.url("/jwks")));
    until_ready(&auth, 5).await;
    assert_eq!(idp.requests("/jwks"), 1);
    let caller = auth.validate(&old_key).await.unwrap();
    assert_eq!(caller.project_id.unwrap().as_str(), "p1");

    // The provider rotates: rsa-2 is published and rsa-1 withdrawn. A token naming the new key
    // makes the service fetch at once (the minimum interval has passed) and is accepted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.answer("/jwks", Answer::json(&jwks(&["rsa-2"])));
    auth.validate(&new_key).await.unwrap();
    assert_eq!(idp.requests("/jwks"), 2, "one early fetch");

    // The withdrawn key no longer verifies anything; asking again so soon fetches nothing.
    assert_eq!(
        refused(auth.validate(&old_key).await),
        AuthError::BadSignature
    );
    assert_eq!(
        idp.requests("/jwks"),
        2,
        "no fetch within the minimum interval"
    );
}

#[tokio::test]
async fn the_provider_failing_or_gone_keeps_the_last_good_keys() {
    let (old_key, new_key) = (token("rsa-1"), token("rsa-2"));
    let idp = IdentityProvider::start();
    idp.answer(
        "/jwks",
        Answer {
            // A one-second lifetime: the service refreshes every second (the minimum).
            cache_control: Some("public, max-age=1"),
            ..Answer::json(&jwks(&["rsa-1"]))
        },
    );
    // Failed fetches are retried after 1 s, then 2 s at most (the refresh interval).
    let auth = authenticator(&AuthSettings {
        jwks_refresh_seconds: 2,
        ..url_settings(idp.url("/jwks"))
    });
    until_ready(&auth, 5).await;

    // Failing answers, then a document without usable keys, then no answer at all (the
    // connection closed at once): each refresh fails, and the keys stay.
    idp.answer("/jwks", Answer::status(500));
    until_fetched(&idp, 2).await;
    auth.validate(&old_key).await.unwrap();
    idp.answer("/jwks", Answer::json(&json!({"keys": []})));
    until_fetched(&idp, 1).await;
    auth.validate(&old_key).await.unwrap();
    idp.set_down(true);
    until_fetched(&idp, 1).await;
    auth.validate(&old_key).await.unwrap();
    assert!(
        auth.readiness().is_ok(),
        "still ready with the last good keys"
    );

    // A token of a key the provider may have published meanwhile cannot be judged while the
    // provider is away: 503, never 401.
    match auth.validate(&new_key).await {
        Err(ValidationError::Unavailable(_)) => {}
        other => panic!("expected 503 while the provider is away, got {other:?}"),
    }

    // The provider comes back with the rotated key: it is taken, and meanwhile the answer
    // stays 503.
    idp.answer("/jwks", Answer::json(&jwks(&["rsa-2"])));
    idp.set_down(false);
    let started = Instant::now();
    loop {
        match auth.validate(&new_key).await {
            Ok(_) => break,
            Err(ValidationError::Unavailable(_)) => {}
            Err(other) => panic!("refused while the provider came back: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to ten seconds) until the provider has been asked for `/jwks` `more` times more.
async fn until_fetched(idp: &IdentityProvider, more: usize) {
    let target = idp.requests("/jwks") + more;
    let started = Instant::now();
    while idp.requests("/jwks") < target {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no refresh: {} fetches",
            idp.requests("/jwks")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The fetch is counted when it arrives; give its failure a moment to be recorded.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn until_the_first_key_set_the_service_is_not_ready_and_tokens_are_503() {
    let idp = IdentityProvider::start();
    idp.answer("/jwks", Answer::status(503));
    let auth = authenticator(&url_settings(idp.url("/jwks")));
    let reason = unready_reason(&auth, "503").await;
    assert!(reason.contains("auth.jwks_url"), "{reason}");
    assert!(reason.contains("503"), "the last error is told: {reason}");
    match auth.validate(&token("rsa-1")).await {
        Err(ValidationError::Unavailable(error)) => {
            assert!(error.to_string().contains("not loaded yet"), "{error}");
        }
        other => panic!("expected 503, got {other:?}"),
    }

    // The provider comes up: the retries (1 s, then 2 s, …) load the keys by themselves.
    idp.answer("/jwks", Answer::json(&jwks(&["rsa-1"])));
    until_ready(&auth, 8).await;
    auth.validate(&token("rsa-1")).await.unwrap();
}

#[tokio::test]
async fn tokens_naming_unknown_keys_cannot_make_the_service_hammer_the_provider() {
    let idp = IdentityProvider::start();
    idp.answer("/jwks", Answer::json(&jwks(&["rsa-1"])));
    let auth = authenticator(&url_settings(idp.url("/jwks")));
    until_ready(&auth, 5).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Tokens each naming a key nobody has, twenty at once, again and again for three seconds
    // (signed beforehand: RSA signing in a debug build is slower than the fetches).
    let forged: Vec<String> = (0..20)
        .map(|i| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(format!("forged-{i}"));
            sign(&header, "rsa-2", &claims(None))
        })
        .collect();
    let started = Instant::now();
    let mut attempts = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let batch: Vec<_> = forged
            .iter()
            .map(|token| {
                let (auth, token) = (auth.clone(), token.clone());
                tokio::spawn(async move { auth.validate(&token).await })
            })
            .collect();
        for task in batch {
            assert_eq!(refused(task.await.unwrap()), AuthError::BadSignature);
            attempts += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let early = idp.requests("/jwks") - 1;
    // At least one early fetch, and never more than one per second (the minimum interval),
    // counting one scheduled by the last tokens.
    assert!(
        early >= 1 && early as f64 <= seconds.ceil() + 1.0,
        "{early} early fetches for {attempts} tokens in {seconds:.1} s"
    );
}

#[tokio::test]
async fn an_oidc_issuer_names_its_jwks_and_its_tokens_issuer() {
    let idp = IdentityProvider::start();
    let issuer = idp.url("/realms/cloud");
    idp.answer(
        "/realms/cloud/.well-known/openid-configuration",
        Answer::json(&json!({
            "issuer": issuer,
            "jwks_uri": idp.url("/realms/cloud/certs"),
            "authorization_endpoint": idp.url("/realms/cloud/auth"),
        })),
    );
    idp.answer("/realms/cloud/certs", Answer::json(&jwks(&["rsa-1"])));
    let auth = authenticator(&AuthSettings {
        oidc_issuer: Some(issuer.clone()),
        jwks_min_refresh_seconds: 1,
        ..AuthSettings::default()
    });
    until_ready(&auth, 5).await;
    auth.validate(&token_with_issuer("rsa-1", Some(&issuer)))
        .await
        .unwrap();
    // The issuer is required as `iss`.
    assert_eq!(
        refused(
            auth.validate(&token_with_issuer("rsa-1", Some("https://elsewhere")))
                .await
        ),
        AuthError::WrongIssuer
    );
    assert_eq!(
        refused(auth.validate(&token("rsa-1")).await),
        AuthError::WrongIssuer
    );
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_not_believed() {
    let idp = IdentityProvider::start();
    idp.answer(
        "/.well-known/openid-configuration",
        Answer::json(&json!({"issuer": "https://evil.example", "jwks_uri": idp.url("/certs")})),
    );
    idp.answer("/certs", Answer::json(&jwks(&["rsa-1"])));
    let auth = authenticator(&AuthSettings {
        oidc_issuer: Some(idp.base.clone()),
        jwks_min_refresh_seconds: 1,
        ..AuthSettings::default()
    });
    let reason = unready_reason(&auth, "evil.example").await;
    assert!(reason.contains("evil.example"), "{reason}");
    assert_eq!(idp.requests("/certs"), 0, "its keys were never fetched");
}

#[tokio::test]
async fn header_fields_that_point_at_other_keys_are_never_followed() {
    let idp = IdentityProvider::start();
    idp.answer("/jwks", Answer::json(&jwks(&["rsa-1"])));
    // The attacker's own key set, which a validator that followed `jku` or `x5u` would fetch.
    idp.answer("/attacker/jwks", Answer::json(&jwks(&["rsa-2"])));
    let auth = authenticator(&url_settings(idp.url("/jwks")));
    until_ready(&auth, 5).await;

    let attacker_jwk: Jwk = serde_json::from_value(jwks(&["rsa-2"])["keys"][0].clone()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".to_owned());
    header.jku = Some(idp.url("/attacker/jwks"));
    header.x5u = Some(idp.url("/attacker/cert.pem"));
    header.jwk = Some(attacker_jwk);
    let forged = sign(&header, "rsa-2", &claims(None));
    assert_eq!(
        refused(auth.validate(&forged).await),
        AuthError::BadSignature
    );
    assert_eq!(idp.requests("/attacker/jwks"), 0);
    assert_eq!(idp.requests("/attacker/cert.pem"), 0);
    // The same fields on a token of the real key change nothing either.
    let mut header = header.clone();
    header.jwk = None;
    auth.validate(&sign(&header, "rsa-1", &claims(None)))
        .await
        .unwrap();
}

#[tokio::test]
async fn key_files_are_read_again_on_reload_and_a_bad_file_keeps_the_keys_in_use() {
    let dir = std::env::temp_dir().join(format!("csbs-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks(&["rsa-1"]).to_string()).unwrap();
    let auth = authenticator(&AuthSettings {
        jwks_file: Some(path.clone()),
        ..AuthSettings::default()
    });
    auth.validate(&token("rsa-1")).await.unwrap();
    assert!(auth.validate(&token("rsa-2")).await.is_err());

    std::fs::write(&path, jwks(&["rsa-2"]).to_string()).unwrap();
    assert_eq!(auth.reload_keys().unwrap(), Some(1));
    auth.validate(&token("rsa-2")).await.unwrap();
    assert_eq!(
        refused(auth.validate(&token("rsa-1")).await),
        AuthError::BadSignature
    );

    // A half-written file is an error, and the keys stay as they were.
    std::fs::write(&path, r#"{"keys": [{"kty": "RSA""#).unwrap();
    let error = auth.reload_keys().unwrap_err().to_string();
    assert!(error.contains("jwks.json"), "{error}");
    auth.validate(&token("rsa-2")).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unusable_remote_key_settings_are_refused_at_start_up() {
    let rows = [
        (
            AuthSettings {
                jwks_url: Some("ftp://idp/jwks".to_owned()),
                ..AuthSettings::default()
            },
            "auth.jwks_url (CSBS__AUTH__JWKS_URL)",
        ),
        (
            AuthSettings {
                jwks_url: Some("https://idp/jwks".to_owned()),
                oidc_issuer: Some("https://idp".to_owned()),
                ..AuthSettings::default()
            },
            "not both",
        ),
        (
            AuthSettings {
                jwks_url: Some("https://idp/jwks".to_owned()),
                jwks_min_refresh_seconds: 0,
                ..AuthSettings::default()
            },
            "auth.jwks_min_refresh_seconds",
        ),
        (
            AuthSettings {
                jwks_url: Some("https://idp/jwks".to_owned()),
                jwks_refresh_seconds: 2,
                jwks_min_refresh_seconds: 5,
                ..AuthSettings::default()
            },
            "auth.jwks_refresh_seconds",
        ),
        (
            AuthSettings {
                oidc_issuer: Some("https://idp".to_owned()),
                jwks_ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
                ..AuthSettings::default()
            },
            "/nonexistent/ca.pem",
        ),
    ];
    for (settings, message) in rows {
        let error = Authenticator::from_settings(&settings, Arc::new(NoObserver))
            .err()
            .unwrap_or_else(|| panic!("accepted: {settings:?}"))
            .to_string();
        assert!(error.contains(message), "{error}");
    }
}

#[tokio::test]
async fn a_provider_key_the_service_cannot_use_is_skipped_not_fatal() {
    let idp = IdentityProvider::start();
    let mut set = jwks(&["rsa-1"]);
    let keys = set["keys"].as_array_mut().unwrap();
    // A shared secret and a key whose `alg` does not fit it: a file with them is refused at
    // start-up, but a provider's key set is used for the keys that are fine.
    keys.push(json!({"kty": "oct", "kid": "shared", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}));
    let mut misfit = jwks(&["rsa-2"])["keys"][0].clone();
    misfit["alg"] = json!("ES256");
    keys.push(misfit);
    idp.answer("/jwks", Answer::json(&set));
    let auth = authenticator(&url_settings(idp.url("/jwks")));
    until_ready(&auth, 5).await;
    auth.validate(&token("rsa-1")).await.unwrap();
    assert_eq!(
        refused(auth.validate(&token("rsa-2")).await),
        AuthError::BadSignature
    );
}

/// A token that verified is remembered, and its next uses are answered from memory; that
/// memory changes no answer: the token is refused the moment it expires, and once the key
/// files are read again it is checked against the keys they now hold.
#[tokio::test]
async fn a_remembered_token_still_expires_and_stops_verifying_with_its_key() {
    let secret = "remembered-tokens-secret-0123456789abcdef";
    let auth = authenticator(&AuthSettings {
        hmac_secret: Some(secret.into()),
        leeway_seconds: 0,
        ..AuthSettings::default()
    });
    let expires = jsonwebtoken::get_current_timestamp() + 2;
    let short_lived = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "project_id": "p1", "exp": expires}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    for _ in 0..3 {
        auth.validate(&short_lived).await.unwrap();
    }
    while jsonwebtoken::get_current_timestamp() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refused(auth.validate(&short_lived).await),
        AuthError::Expired
    );

    let key_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("csbs-auth-{}-remembered.pem", std::process::id()));
    std::fs::copy(key_path("rsa_public.pem"), &key_file).unwrap();
    let auth = authenticator(&AuthSettings {
        public_key_files: vec![key_file.clone()],
        ..AuthSettings::default()
    });
    let signed = sign(&Header::new(Algorithm::RS256), "rsa-1", &claims(None));
    for _ in 0..3 {
        auth.validate(&signed).await.unwrap();
    }
    std::fs::copy(key_path("rsa2_public.pem"), &key_file).unwrap();
    assert_eq!(auth.jwt().unwrap().reload_key_files().unwrap(), Some(1));
    assert_eq!(
        refused(auth.validate(&signed).await),
        AuthError::BadSignature
    );
    std::fs::remove_file(&key_file).unwrap();
}
