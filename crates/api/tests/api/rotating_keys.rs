//! Signing keys that rotate, through the service: `/readyz` waits for the first key set of a
//! JWKS URL, an identity provider's new key works without a restart, and the binary reads its
//! key files again on SIGHUP.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use csbs_test_support::identity_provider::{jwks_subset, Answer, IdentityProvider};
use csbs_test_support::TestDatabase;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{serve_command, test_settings, TestApp};

fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/keys")
        .join(name)
}

/// A JWKS of the fixture keys `kids`.
fn jwks(kids: &[&str]) -> Value {
    jwks_subset(&key("jwks.json"), kids)
}

/// A tenant-a token signed with the RSA fixture key `kid` (`rsa-1` or `rsa-2`).
fn token(kid: &str) -> String {
    let private = if kid == "rsa-1" {
        "rsa_private.pem"
    } else {
        "rsa2_private.pem"
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        &json!({"sub": "u", "project_id": "tenant-a", "exp": now + 600, "iat": now}),
        &EncodingKey::from_rsa_pem(&std::fs::read(key(private)).unwrap()).unwrap(),
    )
    .unwrap()
}

const COUNT: &str = "/v1/tenant-a/checkpoint_items/count";

/// The value of the metric line that starts with `name` (labels included); 0 when absent.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn readiness_waits_for_the_first_key_set_and_a_new_key_needs_no_restart() {
    // Signed beforehand: RSA signing in a debug build can take longer than the intervals.
    let (old_key, new_key) = (token("rsa-1"), token("rsa-2"));
    let idp = IdentityProvider::start();
    idp.answer("/keys", Answer::status(502));
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(db.url());
    settings.auth.hmac_secret = None;
    settings.auth.jwks_url = Some(idp.url("/keys"));
    settings.auth.jwks_min_refresh_seconds = 1;
    let app = TestApp::spawn_with(settings, Some(db), "sqlite, JWKS URL".into()).await;

    // The database is fine, the identity provider is not: not ready, and tokens are 503.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let readyz = app.get("/readyz", "").await;
    assert_eq!(readyz.status(), 503);
    let count = app.get(COUNT, &old_key).await;
    assert_eq!(count.status(), 503);
    assert!(count.headers().contains_key("retry-after"));

    idp.answer("/keys", Answer::json(&jwks(&["rsa-1"])));
    let started = Instant::now();
    while app.get("/readyz", "").await.status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(8), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.get(COUNT, &old_key).await.status(), 200);

    // The provider rotates to rsa-2; its first token is accepted at once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.answer("/keys", Answer::json(&jwks(&["rsa-2"])));
    assert_eq!(app.get(COUNT, &new_key).await.status(), 200);
    assert_eq!(app.get(COUNT, &old_key).await.status(), 401);
    let metrics = app.metrics().await;
    let loads = metric(
        &metrics,
        r#"csbs_auth_key_loads_total{outcome="ok",source="jwks_url"}"#,
    );
    assert!(loads >= 2, "{metrics}");
    assert!(
        metrics.contains(r#"csbs_auth_key_loads_total{outcome="failed",source="jwks_url"}"#),
        "{metrics}"
    );
}

#[test]
fn the_binary_reads_its_key_files_again_on_sighup() {
    let db = TestDatabase::sqlite();
    let dir = std::env::temp_dir().join(format!("csbs-sighup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&["rsa-1"]).to_string()).unwrap();
    let (port, mut command) = serve_command(&db, &dir);
    let mut child = command
        .env("CSBS__AUTH__JWKS_FILE", &jwks_file)
        .env("CSBS__LOG__FILTER", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tokens = [("rsa-1", token("rsa-1")), ("rsa-2", token("rsa-2"))];
    let count = |kid: &str| -> u16 {
        let token = &tokens.iter().find(|(k, _)| *k == kid).unwrap().1;
        let response = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}{COUNT}"))
            .header("X-Auth-Token", token)
            .timeout(Duration::from_secs(5))
            .send();
        response.map_or(0, |r| r.status().as_u16())
    };
    let hangup = || {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let started = Instant::now();
    while count("rsa-1") != 200 {
        assert!(started.elapsed() < Duration::from_secs(20), "never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count("rsa-2"), 401);

    // The key is rotated in the file; SIGHUP makes it count, and does not end the process.
    std::fs::write(&jwks_file, jwks(&["rsa-2"]).to_string()).unwrap();
    hangup();
    let started = Instant::now();
    while count("rsa-2") != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new key never worked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count("rsa-1"), 401);

    // A broken file on SIGHUP leaves the keys in use alone.
    std::fs::write(&jwks_file, "{\"keys\": [").unwrap();
    hangup();
    let failed = r#"csbs_auth_key_loads_total{outcome="failed",source="files"}"#;
    let metrics = || {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    let started = Instant::now();
    while metric(&metrics(), failed) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the SIGHUP was not handled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count("rsa-2"), 200);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
