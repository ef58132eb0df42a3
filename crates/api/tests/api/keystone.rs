//! Keystone tokens end to end, against the real Keystone that `scripts/keystone.sh start`
//! serves (Debian's keystone, Fernet tokens, uwsgi): its accounts, projects and roles, and the
//! service validating tokens with its own account.
//!
//! The Keystone is found through the environment file the script writes
//! (`CSBS_TEST_KEYSTONE_ENV`, default `/var/tmp/csbs-keystone/keystone.env`). Under CI (`CI`
//! set) a missing or silent Keystone fails these tests; elsewhere they pass without running
//! and say so once, on stderr past the harness's capture.

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use csbs_api::settings::Settings;
use csbs_auth::KeystoneSettings;
use csbs_test_support::{item_record, TestDatabase};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::{assert_error, ingest_item, test_settings, TestApp};

const DEFAULT_ENV_FILE: &str = "/var/tmp/csbs-keystone/keystone.env";

/// The Keystone of `scripts/keystone.sh`, as its environment file describes it.
#[derive(Debug, Clone)]
struct Keystone {
    url: String,
    service_user: String,
    service_password: String,
    service_project: String,
    user_password: String,
    tenant_a: String,
    tenant_b: String,
}

/// Whom a token is scoped to.
enum Scope<'a> {
    Project(&'a str),
    Domain,
    Unscoped,
}

impl Keystone {
    /// The test Keystone, if there is one (see the module documentation).
    fn find() -> Option<Self> {
        static FOUND: OnceLock<Option<Keystone>> = OnceLock::new();
        FOUND
            .get_or_init(|| {
                csbs_test_support::required_under_ci(
                    Self::load().map_err(|why| format!("no test Keystone ({why})")),
                    "the `keystone::` tests of this binary pass without running; start one \
                     with scripts/keystone.sh start",
                )
            })
            .clone()
    }

    fn load() -> Result<Self, String> {
        let path =
            std::env::var("CSBS_TEST_KEYSTONE_ENV").unwrap_or_else(|_| DEFAULT_ENV_FILE.into());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let values: HashMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let get = |key: &str| {
            values
                .get(key)
                .map(|v| (*v).to_owned())
                .ok_or_else(|| format!("{path} has no {key}"))
        };
        let keystone = Self {
            url: get("CSBS_TEST_KEYSTONE_URL")?,
            service_user: get("CSBS_TEST_KEYSTONE_SERVICE_USER")?,
            service_password: get("CSBS_TEST_KEYSTONE_SERVICE_PASSWORD")?,
            service_project: get("CSBS_TEST_KEYSTONE_SERVICE_PROJECT")?,
            user_password: get("CSBS_TEST_KEYSTONE_USER_PASSWORD")?,
            tenant_a: get("CSBS_TEST_KEYSTONE_TENANT_A")?,
            tenant_b: get("CSBS_TEST_KEYSTONE_TENANT_B")?,
        };
        let address = keystone.address()?;
        TcpStream::connect_timeout(&address, Duration::from_secs(2))
            .map_err(|e| format!("Keystone at {} does not answer: {e}", keystone.url))?;
        Ok(keystone)
    }

    /// `host:port` of the URL.
    fn address(&self) -> Result<std::net::SocketAddr, String> {
        let authority = self
            .url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| format!("cannot read host and port from {}", self.url))
    }

    /// `auth.keystone` for a service that validates with the test service account at `url`.
    fn settings(&self, url: &str) -> KeystoneSettings {
        KeystoneSettings {
            url: Some(url.to_owned()),
            username: self.service_user.clone(),
            password: Some(SecretString::from(self.service_password.clone())),
            project_name: self.service_project.clone(),
            // A loaded machine's Keystone can take a second for a password login.
            timeout_ms: 10_000,
            ..KeystoneSettings::default()
        }
    }

    /// A token of `user` (with the test users' password), scoped as asked.
    async fn login(&self, user: &str, scope: Scope<'_>) -> String {
        let password = if user == self.service_user {
            &self.service_password
        } else {
            &self.user_password
        };
        let mut auth = json!({"identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}},
        }});
        match scope {
            Scope::Project(name) => {
                auth["scope"] = json!({"project": {"name": name, "domain": {"name": "Default"}}});
            }
            Scope::Domain => auth["scope"] = json!({"domain": {"name": "Default"}}),
            Scope::Unscoped => {}
        }
        let response = reqwest::Client::new()
            .post(format!("{}/auth/tokens?nocatalog", self.url))
            .json(&json!({ "auth": auth }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "login of {user}");
        let token = response.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("gAAAAA"), "a Fernet token: {token}");
        token
    }

    /// Revokes `token` (its owner may).
    async fn revoke(&self, token: &str) {
        let response = reqwest::Client::new()
            .delete(format!("{}/auth/tokens", self.url))
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
}

/// A service that accepts Keystone tokens (and JWTs) from the Keystone at `url`.
async fn spawn(keystone: &Keystone, url: &str, change: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(db.url());
    settings.auth.keystone = keystone.settings(url);
    change(&mut settings);
    TestApp::spawn_with(settings, Some(db), "SQLite, Keystone".into()).await
}

async fn status(app: &TestApp, path: &str, token: &str) -> u16 {
    app.get(path, token).await.status().as_u16()
}

fn count_path(project: &str) -> String {
    format!("/v1/{project}/checkpoint_items/count")
}

#[actix_web::test]
async fn members_read_their_own_tenant_and_administrators_every_tenant() {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let app = spawn(&keystone, &keystone.url, |_| {}).await;
    let (a, b) = (keystone.tenant_a.as_str(), keystone.tenant_b.as_str());
    let own = item_record(a, json!({}));
    let own_id = own.id.as_str().to_owned();
    app.store(&[own, item_record(a, json!({})), item_record(b, json!({}))]);

    let member = keystone
        .login("csbs-member-a", Scope::Project("csbs-tenant-a"))
        .await;
    let body: Value = app.get(&count_path(a), &member).await.json().await.unwrap();
    assert_eq!(body["count"], 2, "{body}");
    let list: Value = app
        .get(&format!("/v1/{a}/checkpoint_items"), &member)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["checkpoint_items"].as_array().unwrap().len(),
        2,
        "{list}"
    );
    let show = app
        .get(&format!("/v1/{a}/checkpoint_items/{own_id}"), &member)
        .await;
    assert_eq!(show.status(), 200);
    let show: Value = show.json().await.unwrap();
    assert_eq!(show["checkpoint_item"]["id"], own_id.as_str());

    assert_error(app.get(&count_path(b), &member).await, 403, "APIGW.0302").await;
    let all = format!("{}?all_tenants=true", count_path(a));
    assert_error(app.get(&all, &member).await, 403, "APIGW.0302").await;

    let admin = keystone
        .login("csbs-admin", Scope::Project("csbs-tenant-a"))
        .await;
    let body: Value = app.get(&all, &admin).await.json().await.unwrap();
    assert_eq!(body["count"], 3, "{body}");
    assert_eq!(status(&app, &count_path(b), &admin).await, 200);

    // The paths an SDK probes before its first call: not found, never a failure.
    for probe in ["/", "/v1", "/v1/"] {
        let answer = status(&app, probe, &member).await;
        assert!(answer == 404 || answer == 200, "{probe}: {answer}");
    }

    // JWTs keep working beside Keystone tokens.
    assert_eq!(status(&app, &count_path(a), &app.token(a, &[])).await, 200);

    let metrics = app.metrics().await;
    for line in [
        "csbs_keystone_validations_total{outcome=\"valid\"}",
        "csbs_keystone_cache_hits_total",
        "csbs_keystone_request_duration_seconds_bucket{call=\"validate\"",
        "csbs_keystone_request_duration_seconds_bucket{call=\"login\"",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[actix_web::test]
async fn tokens_without_a_project_reach_no_tenant() {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let app = spawn(&keystone, &keystone.url, |_| {}).await;
    let path = count_path(&keystone.tenant_a);
    let domain = keystone.login("csbs-domain-member", Scope::Domain).await;
    let body = assert_error(app.get(&path, &domain).await, 403, "APIGW.0302").await;
    assert!(
        body["error_msg"].as_str().unwrap().contains("no project"),
        "{body}"
    );
    let unscoped = keystone.login("csbs-member-a", Scope::Unscoped).await;
    assert_error(app.get(&path, &unscoped).await, 403, "APIGW.0302").await;
}

#[actix_web::test]
async fn a_garbage_token_is_401_with_the_keystone_challenge() {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let app = spawn(&keystone, &keystone.url, |settings| {
        settings.auth.keystone.public_url = Some("https://iam.example.com/v3".to_owned());
    })
    .await;
    let path = count_path(&keystone.tenant_a);
    for garbage in ["gAAAAABnot-a-real-token", "garbage"] {
        let response = app.get(&path, garbage).await;
        let challenges: Vec<String> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            challenges,
            ["Keystone uri=\"https://iam.example.com/v3\"", "Bearer"],
            "{garbage}"
        );
        assert_error(response, 401, "APIGW.0301").await;
    }
}

#[actix_web::test]
async fn a_revoked_token_is_refused_once_the_cache_lifetime_ends() {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let cache = Duration::from_secs(2);
    let app = spawn(&keystone, &keystone.url, |settings| {
        settings.auth.keystone.cache_seconds = cache.as_secs();
    })
    .await;
    let path = count_path(&keystone.tenant_a);
    let token = keystone
        .login("csbs-member-a", Scope::Project("csbs-tenant-a"))
        .await;
    assert_eq!(status(&app, &path, &token).await, 200);
    // Cached no earlier than the answer came: the lifetime is counted from here.
    let validated = Instant::now();
    keystone.revoke(&token).await;
    let still_cached = status(&app, &path, &token).await;
    if validated.elapsed() < cache - Duration::from_millis(500) {
        assert_eq!(still_cached, 200, "believed from the cache until it ends");
    }
    tokio::time::sleep(cache.saturating_sub(validated.elapsed()) + Duration::from_millis(500))
        .await;
    assert_error(app.get(&path, &token).await, 401, "APIGW.0301").await;
}

/// A TCP relay to Keystone that can be cut: Keystone "stopped" for one service only, while
/// the other tests go on using it.
struct Relay {
    url: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(keystone: &Keystone) -> Self {
        let target = keystone.address().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v3", listener.local_addr().unwrap());
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let connections = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(relay);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { url, tasks }
    }

    /// Closes the listener and every relayed connection: connections are refused from now on.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[actix_web::test]
async fn keystone_stopped_new_tokens_503_and_cached_ones_keep_working() {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let relay = Relay::start(&keystone).await;
    let app = spawn(&keystone, &relay.url, |_| {}).await;
    let path = count_path(&keystone.tenant_a);
    let known = keystone
        .login("csbs-member-a", Scope::Project("csbs-tenant-a"))
        .await;
    let new = keystone
        .login("csbs-admin", Scope::Project("csbs-tenant-a"))
        .await;
    assert_eq!(status(&app, &path, &known).await, 200);

    relay.cut();
    // Let aborted relays close their sockets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&app, &path, &known).await, 200, "cached");
    for token in [new.as_str(), "gAAAAABnever-seen"] {
        let response = app.get(&path, token).await;
        assert_eq!(
            response.headers()["retry-after"].to_str().unwrap(),
            csbs_api::errors::RETRY_AFTER_SECONDS.to_string()
        );
        assert_error(response, 503, "CSBS.9998").await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("csbs_keystone_validations_total{outcome=\"unavailable\"}"),
        "{metrics}"
    );
}

/// A member's valid token, validated by a service whose own account is changed by `account`:
/// the answer must be 503, never the caller's 401 (nor a success by the caller's own token).
async fn a_misconfigured_account_is_503(account: impl FnOnce(&Keystone, &mut KeystoneSettings)) {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let app = spawn(&keystone, &keystone.url, |settings| {
        account(&keystone, &mut settings.auth.keystone);
    })
    .await;
    let token = keystone
        .login("csbs-member-a", Scope::Project("csbs-tenant-a"))
        .await;
    let response = app.get(&count_path(&keystone.tenant_a), &token).await;
    assert_error(response, 503, "CSBS.9998").await;
}

#[actix_web::test]
async fn a_wrong_service_password_is_503_not_401() {
    a_misconfigured_account_is_503(|_, account| {
        account.password = Some(SecretString::from("not-the-password"));
    })
    .await;
}

/// Keystone lets only the `service` role (or an administrator) validate others' tokens: a
/// service account that is a mere member is refused (403), which is the operator's to fix.
#[actix_web::test]
async fn a_service_account_without_the_service_role_is_503() {
    a_misconfigured_account_is_503(|keystone, account| {
        account.username = "csbs-member-b".to_owned();
        account.password = Some(SecretString::from(keystone.user_password.clone()));
        account.project_name = "csbs-tenant-b".to_owned();
    })
    .await;
}

#[actix_web::test]
async fn only_the_service_role_may_ingest() {
    let Some(keystone) = Keystone::find() else {
        return;
    };
    let app = spawn(&keystone, &keystone.url, |_| {}).await;
    let tenant = keystone.tenant_a.as_str();
    let engine = keystone
        .login("csbs-engine", Scope::Project("service"))
        .await;
    let member = keystone
        .login("csbs-member-a", Scope::Project("csbs-tenant-a"))
        .await;
    let item = ingest_item(tenant, json!({}));
    let path = format!(
        "/ingest/v1/{tenant}/checkpoint_items/{}",
        item["id"].as_str().unwrap()
    );
    let response = app
        .send(reqwest::Method::PUT, &path, &member, Some(&item), None)
        .await;
    assert_error(response, 403, "APIGW.0302").await;
    let response = app
        .send(reqwest::Method::PUT, &path, &engine, Some(&item), None)
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = app
        .get(&count_path(tenant), &member)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["count"], 1, "{body}");
}
