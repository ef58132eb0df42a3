//! Keystone token validation against a stand-in Keystone on a loopback port: what is asked,
//! how often, and what each answer becomes. (The tests against a real Keystone are the API's.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_keystone;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csbs_auth::{
    mint_hs256, AuthError, AuthSettings, Authenticator, Claims, KeyError, KeystoneCall,
    KeystoneSettings, NoObserver, ValidationError, ValidationObserver, ValidationOutcome,
};
use csbs_domain::ProjectId;
use secrecy::SecretString;

use fake_keystone::{token_body, FakeKeystone, SERVICE_PASSWORD};

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const HMAC: &str = "keystone-test-secret-0123456789abcdef";

fn keystone_settings(url: &str) -> KeystoneSettings {
    KeystoneSettings {
        url: Some(url.to_owned()),
        password: Some(SecretString::from(SERVICE_PASSWORD)),
        timeout_ms: 1000,
        ..KeystoneSettings::default()
    }
}

fn settings(keystone: KeystoneSettings) -> AuthSettings {
    AuthSettings {
        keystone,
        ..AuthSettings::default()
    }
}

fn authenticator(settings: &AuthSettings) -> Authenticator {
    Authenticator::from_settings(settings, Arc::new(NoObserver)).unwrap()
}

/// Counts what the validator reports.
#[derive(Default)]
struct Counting {
    valid: AtomicUsize,
    invalid: AtomicUsize,
    expired: AtomicUsize,
    unavailable: AtomicUsize,
    hits: AtomicUsize,
    validate_calls: AtomicUsize,
    login_calls: AtomicUsize,
}

impl ValidationObserver for Counting {
    fn validation(&self, outcome: ValidationOutcome) {
        match outcome {
            ValidationOutcome::Valid => &self.valid,
            ValidationOutcome::Invalid => &self.invalid,
            ValidationOutcome::Expired => &self.expired,
            ValidationOutcome::Unavailable => &self.unavailable,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
    fn cache_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    fn keystone_call(&self, call: KeystoneCall, seconds: f64) {
        assert!(seconds >= 0.0);
        match call {
            KeystoneCall::Validate => &self.validate_calls,
            KeystoneCall::Login => &self.login_calls,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

fn unavailable(result: Result<csbs_auth::Caller, ValidationError>) -> String {
    match result {
        Err(ValidationError::Unavailable(error)) => error.to_string(),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_token_becomes_a_caller_and_is_asked_once() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token(
        "member-token",
        token_body("u1", Some(PROJECT), &["member", "reader"], 3600),
    );
    let observer = Arc::new(Counting::default());
    let auth = Authenticator::from_settings(
        &settings(keystone_settings(&keystone.url)),
        Arc::clone(&observer) as Arc<dyn ValidationObserver>,
    )
    .unwrap();
    for _ in 0..3 {
        let caller = auth.validate("member-token").await.unwrap();
        assert_eq!(caller.user, "u1");
        assert_eq!(caller.project_id.as_ref().unwrap().as_str(), PROJECT);
        assert_eq!(caller.roles, ["member", "reader"]);
        assert!(!caller.is_admin() && !caller.is_service());
    }
    assert_eq!(keystone.validations(), 1);
    assert_eq!(keystone.logins(), 1);
    assert_eq!(observer.valid.load(Ordering::Relaxed), 3);
    assert_eq!(observer.hits.load(Ordering::Relaxed), 2);
    assert_eq!(observer.validate_calls.load(Ordering::Relaxed), 1);
    assert_eq!(observer.login_calls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_unknown_token_is_refused_and_remembered_only_briefly() {
    let keystone = FakeKeystone::start().await;
    let auth = authenticator(&settings(KeystoneSettings {
        invalid_cache_seconds: 1,
        ..keystone_settings(&keystone.url)
    }));
    for _ in 0..2 {
        assert_eq!(
            auth.validate("gAAAAABgarbage").await.unwrap_err(),
            ValidationError::Rejected(AuthError::UnknownToken)
        );
    }
    assert_eq!(keystone.validations(), 1);
    // Made valid meanwhile (a replica caught up): believed once the short memory ends.
    keystone.add_token("gAAAAABgarbage", token_body("u", Some(PROJECT), &[], 3600));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(auth.validate("gAAAAABgarbage").await.is_ok());
    assert_eq!(keystone.validations(), 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_new_token_ask_keystone_once() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("shared", token_body("u", Some(PROJECT), &["member"], 3600));
    keystone.with(|s| s.delay = Duration::from_millis(300));
    let auth = authenticator(&settings(keystone_settings(&keystone.url)));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.validate("shared").await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(keystone.validations(), 1);
}

#[tokio::test]
async fn a_revoked_token_is_refused_once_the_cache_lifetime_ends() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("t", token_body("u", Some(PROJECT), &[], 3600));
    let auth = authenticator(&settings(KeystoneSettings {
        cache_seconds: 1,
        ..keystone_settings(&keystone.url)
    }));
    assert!(auth.validate("t").await.is_ok());
    keystone.with(|s| s.tokens.clear());
    assert!(auth.validate("t").await.is_ok(), "still cached");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        auth.validate("t").await.unwrap_err(),
        ValidationError::Rejected(AuthError::UnknownToken)
    );
    // With no cache at all, Keystone is asked every time.
    let uncached = authenticator(&settings(KeystoneSettings {
        cache_seconds: 0,
        ..keystone_settings(&keystone.url)
    }));
    keystone.add_token("t2", token_body("u", Some(PROJECT), &[], 3600));
    let before = keystone.validations();
    for _ in 0..3 {
        assert!(uncached.validate("t2").await.is_ok());
    }
    assert_eq!(keystone.validations(), before + 3);
}

#[tokio::test]
async fn an_expired_token_is_refused_even_from_the_cache() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("short", token_body("u", Some(PROJECT), &[], 1));
    keystone.add_token("old", token_body("u", Some(PROJECT), &[], -10));
    let observer = Arc::new(Counting::default());
    let auth = Authenticator::from_settings(
        &settings(keystone_settings(&keystone.url)),
        Arc::clone(&observer) as Arc<dyn ValidationObserver>,
    )
    .unwrap();
    assert!(auth.validate("short").await.is_ok());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        auth.validate("short").await.unwrap_err(),
        ValidationError::Rejected(AuthError::Expired)
    );
    assert_eq!(
        auth.validate("old").await.unwrap_err(),
        ValidationError::Rejected(AuthError::Expired)
    );
    assert_eq!(observer.expired.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn the_service_token_is_renewed_once_when_keystone_refuses_it() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("a", token_body("u", Some(PROJECT), &[], 3600));
    keystone.add_token("b", token_body("u", Some(PROJECT), &[], 3600));
    let auth = authenticator(&settings(keystone_settings(&keystone.url)));
    assert!(auth.validate("a").await.is_ok());
    // Keystone's keys rotated, or the service token was revoked.
    keystone.with(|s| s.service_tokens.clear());
    assert!(auth.validate("b").await.is_ok());
    assert_eq!(keystone.logins(), 2);
    assert_eq!(keystone.validations(), 3);

    // A Keystone that refuses every service token: 503, not a loop and not a 401.
    keystone.with(|s| s.fail_status = Some(401));
    let message = unavailable(auth.validate("c").await);
    assert!(message.contains("401"), "{message}");
}

#[tokio::test]
async fn the_service_token_is_renewed_before_it_expires() {
    let keystone = FakeKeystone::start().await;
    keystone.with(|s| s.service_token_seconds = 2);
    keystone.add_token("a", token_body("u", Some(PROJECT), &[], 3600));
    keystone.add_token("b", token_body("u", Some(PROJECT), &[], 3600));
    let auth = authenticator(&settings(keystone_settings(&keystone.url)));
    assert!(auth.validate("a").await.is_ok());
    // Renewed at half of a short lifetime, before Keystone would refuse it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(auth.validate("b").await.is_ok());
    assert_eq!(keystone.logins(), 2);
    assert_eq!(keystone.validations(), 2, "no 401 was needed");
}

#[tokio::test]
async fn a_wrong_service_password_makes_validation_unavailable() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("a", token_body("u", Some(PROJECT), &[], 3600));
    let auth = authenticator(&settings(KeystoneSettings {
        password: Some(SecretString::from("wrong-password")),
        ..keystone_settings(&keystone.url)
    }));
    let message = unavailable(auth.validate("a").await);
    assert!(message.contains("login"), "{message}");
    assert!(!message.contains("wrong-password"), "{message}");
    // Within the back-off, the next request does not log in again.
    let _ = auth.validate("b").await;
    assert_eq!(keystone.logins(), 1);
    assert_eq!(keystone.validations(), 0);
}

#[tokio::test]
async fn keystone_failing_unreachable_or_slow_is_unavailable() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("a", token_body("u", Some(PROJECT), &[], 3600));
    for status in [500, 502, 503, 403, 400] {
        keystone.with(|s| s.fail_status = Some(status));
        let auth = authenticator(&settings(keystone_settings(&keystone.url)));
        let message = unavailable(auth.validate("a").await);
        assert!(message.contains(&status.to_string()), "{message}");
    }
    keystone.with(|s| s.fail_status = None);

    let auth = authenticator(&settings(KeystoneSettings {
        timeout_ms: 300,
        ..keystone_settings(&keystone.url)
    }));
    assert!(auth.validate("a").await.is_ok());
    keystone.with(|s| s.delay = Duration::from_millis(1500));
    let started = Instant::now();
    let message = unavailable(auth.validate("a-new").await);
    assert!(message.contains("timed out"), "{message}");
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert!(
        auth.validate("a").await.is_ok(),
        "cached tokens keep working"
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v3", listener.local_addr().unwrap())
    };
    let auth = authenticator(&settings(keystone_settings(&closed)));
    let message = unavailable(auth.validate("a").await);
    assert!(message.contains("cannot connect"), "{message}");
}

#[tokio::test]
async fn a_connection_lost_without_an_answer_is_resent_once() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("a", token_body("u", Some(PROJECT), &[], 3600));
    keystone.add_token("b", token_body("u", Some(PROJECT), &[], 3600));
    let auth = authenticator(&settings(keystone_settings(&keystone.url)));
    keystone.with(|s| s.drop_next = 1);
    assert!(auth.validate("a").await.is_ok());
    assert_eq!(keystone.validations(), 2);
    keystone.with(|s| s.drop_next = 2);
    let message = unavailable(auth.validate("b").await);
    assert!(message.contains("connection"), "{message}");
}

#[tokio::test]
async fn validations_in_flight_are_bounded() {
    let keystone = FakeKeystone::start().await;
    // Twenty unknown tokens, two at a time, 100 ms each: the first few are answered, the
    // last ones wait longer than the 600 ms allowed for a free slot.
    keystone.with(|s| s.delay = Duration::from_millis(100));
    let observer = Arc::new(Counting::default());
    let auth = Authenticator::from_settings(
        &settings(KeystoneSettings {
            max_validations_in_flight: 2,
            timeout_ms: 600,
            ..keystone_settings(&keystone.url)
        }),
        Arc::clone(&observer) as Arc<dyn ValidationObserver>,
    )
    .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.validate(&format!("random-{n}")).await })
        })
        .collect();
    let mut refused = 0;
    let mut unavailable = 0;
    for task in tasks {
        match task.await.unwrap() {
            Err(ValidationError::Rejected(AuthError::UnknownToken)) => refused += 1,
            Err(ValidationError::Unavailable(_)) => unavailable += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(keystone.with(|s| s.max_active) <= 2);
    assert!(refused >= 2, "{refused} refused, {unavailable} unavailable");
    assert!(
        unavailable >= 1,
        "{refused} refused, {unavailable} unavailable"
    );
    assert_eq!(observer.unavailable.load(Ordering::Relaxed), unavailable);
    assert_eq!(observer.invalid.load(Ordering::Relaxed), refused);
}

#[tokio::test]
async fn tokens_without_a_project_reach_tenants_only_as_administrators() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("domain-member", token_body("u", None, &["member"], 3600));
    keystone.add_token(
        "domain-admin",
        token_body("a", None, &["admin", "member"], 3600),
    );
    keystone.add_token("odd-project", token_body("u", Some("a/b"), &[], 3600));
    let auth = authenticator(&settings(keystone_settings(&keystone.url)));
    let tenant = ProjectId::parse("project_id", PROJECT).unwrap();
    let member = auth.validate("domain-member").await.unwrap();
    assert_eq!(member.project_id, None);
    assert!(member.authorize_project(&tenant).is_err());
    let admin = auth.validate("domain-admin").await.unwrap();
    assert!(admin.authorize_project(&tenant).is_ok());
    assert!(admin.authorize_all_tenants().is_ok());
    assert!(matches!(
        auth.validate("odd-project").await.unwrap_err(),
        ValidationError::Rejected(AuthError::InvalidClaims(_))
    ));
}

#[tokio::test]
async fn role_lists_apply_to_keystone_roles() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("engine", token_body("e", Some(PROJECT), &["service"], 3600));
    keystone.add_token("op", token_body("o", Some(PROJECT), &["cloud_admin"], 3600));
    let auth = authenticator(&AuthSettings {
        admin_role: csbs_auth::RoleNames::new(["admin", "cloud_admin"]),
        service_role: csbs_auth::RoleNames::new(["csbs_service", "service"]),
        ..settings(keystone_settings(&keystone.url))
    });
    let engine = auth.validate("engine").await.unwrap();
    assert!(engine.is_service() && !engine.is_admin());
    let op = auth.validate("op").await.unwrap();
    assert!(op.is_admin() && !op.is_service());
}

#[tokio::test]
async fn jwts_and_keystone_tokens_are_routed_by_shape() {
    let keystone = FakeKeystone::start().await;
    keystone.add_token("gAAAAABfernet", token_body("u", Some(PROJECT), &[], 3600));
    let both = authenticator(&AuthSettings {
        hmac_secret: Some(SecretString::from(HMAC)),
        ..settings(keystone_settings(&keystone.url))
    });
    let project = ProjectId::parse("project_id", "jwt-tenant").unwrap();
    let jwt = mint_hs256(
        &SecretString::from(HMAC),
        &Claims::new("j", &project, vec![], Duration::from_secs(60)),
    )
    .unwrap();
    let caller = both.validate(&jwt).await.unwrap();
    assert_eq!(caller.project_id, Some(project));
    assert_eq!(keystone.validations(), 0, "a JWT never goes to Keystone");
    assert!(both.validate("gAAAAABfernet").await.is_ok());
    assert_eq!(keystone.validations(), 1);
    assert_eq!(
        both.validate("a.b.c").await.unwrap_err(),
        ValidationError::Rejected(AuthError::Malformed)
    );
    assert_eq!(keystone.validations(), 1);
    assert_eq!(
        both.challenges(),
        [
            format!("Keystone uri=\"{}\"", keystone.url),
            "Bearer".to_owned()
        ]
    );

    // Keystone alone: every token goes there, JWT-shaped ones too.
    let alone = authenticator(&settings(KeystoneSettings {
        public_url: Some("https://iam.example.com/v3".to_owned()),
        ..keystone_settings(&keystone.url)
    }));
    assert!(alone.jwt().is_none());
    assert_eq!(
        alone.validate(&jwt).await.unwrap_err(),
        ValidationError::Rejected(AuthError::UnknownToken)
    );
    assert_eq!(keystone.validations(), 2);
    assert_eq!(
        alone.challenges(),
        ["Keystone uri=\"https://iam.example.com/v3\"".to_owned()]
    );
    assert_eq!(
        alone.validate(&"x".repeat(9000)).await.unwrap_err(),
        ValidationError::Rejected(AuthError::TooLarge)
    );
    assert_eq!(keystone.validations(), 2);

    // JWT alone: an opaque token is malformed; no Keystone challenge.
    let jwt_only = authenticator(&AuthSettings {
        hmac_secret: Some(SecretString::from(HMAC)),
        ..AuthSettings::default()
    });
    assert_eq!(
        jwt_only.validate("gAAAAABfernet").await.unwrap_err(),
        ValidationError::Rejected(AuthError::Malformed)
    );
    assert_eq!(jwt_only.challenges(), ["Bearer".to_owned()]);
}

#[test]
fn unusable_keystone_settings_are_refused_at_start_up() {
    let error = |keystone: KeystoneSettings| {
        Authenticator::from_settings(&settings(keystone), Arc::new(NoObserver)).unwrap_err()
    };
    let url = "http://127.0.0.1:1/v3";
    let rows: Vec<(KeystoneSettings, &str)> = vec![
        (
            KeystoneSettings {
                password: None,
                ..keystone_settings(url)
            },
            "auth.keystone.password (CSBS__AUTH__KEYSTONE__PASSWORD)",
        ),
        (keystone_settings("keystone:5000/v3"), "auth.keystone.url"),
        (
            KeystoneSettings {
                invalid_cache_seconds: 61,
                ..keystone_settings(url)
            },
            "auth.keystone.invalid_cache_seconds",
        ),
        (
            KeystoneSettings {
                timeout_ms: 0,
                ..keystone_settings(url)
            },
            "auth.keystone.timeout_ms",
        ),
        (
            KeystoneSettings {
                max_validations_in_flight: 0,
                ..keystone_settings(url)
            },
            "auth.keystone.max_validations_in_flight",
        ),
        (
            KeystoneSettings {
                public_url: Some("http://a\" b".to_owned()),
                ..keystone_settings(url)
            },
            "auth.keystone.public_url",
        ),
        (
            KeystoneSettings {
                ca_file: Some(std::path::PathBuf::from("/nonexistent/ca.pem")),
                ..keystone_settings(url)
            },
            "/nonexistent/ca.pem",
        ),
    ];
    for (keystone, names) in rows {
        let message = error(keystone).to_string();
        assert!(message.contains(names), "{message}");
    }
    // An empty URL is Keystone off: without JWT keys, no key at all.
    assert!(matches!(
        error(KeystoneSettings {
            url: Some(" ".to_owned()),
            ..KeystoneSettings::default()
        }),
        KeyError::NoKeys
    ));
    let blank_role = Authenticator::from_settings(
        &AuthSettings {
            admin_role: csbs_auth::RoleNames::new([""]),
            ..settings(keystone_settings(url))
        },
        Arc::new(NoObserver),
    )
    .unwrap_err();
    assert!(matches!(
        blank_role,
        KeyError::EmptySetting {
            setting: "admin_role"
        }
    ));
    let auth = authenticator(&settings(keystone_settings(url)));
    let debug = format!("{auth:?}");
    assert!(!debug.contains(SERVICE_PASSWORD), "{debug}");
}
