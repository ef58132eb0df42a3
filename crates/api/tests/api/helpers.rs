//! A running service for one test, on its own database.

use std::sync::Arc;

use actix_web::web;
use csbs_api::settings::Settings;
use csbs_api::startup::Application;
use csbs_api::state::AppState;
use csbs_auth::{mint_hs256, Claims};
use csbs_domain::{BackupRecord, ProjectId};
use csbs_test_support::{item_json, TestDatabase};
use secrecy::SecretString;
use serde_json::Value;

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// A service listening on a free port, and the database behind it.
pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub db_label: String,
    _db: Option<TestDatabase>,
    data_dir: std::path::PathBuf,
}

/// Settings for a test service on `database_url`.
pub fn test_settings(database_url: &str) -> Settings {
    let data_dir =
        std::env::temp_dir().join(format!("csbs-api-test-{}", uuid::Uuid::new_v4().simple()));
    let env: std::collections::HashMap<String, String> = [
        ("CSBS__SERVER__BIND", "127.0.0.1:0"),
        ("CSBS__SERVER__WORKERS", "1"),
        ("CSBS__SERVER__SHUTDOWN_GRACE_SECONDS", "1"),
        ("CSBS__AUTH__HMAC_SECRET", SECRET),
        ("CSBS__DATABASE__MIN_IDLE_CONNECTIONS", "0"),
        ("CSBS__DATABASE__POOL_TIMEOUT_MS", "500"),
        ("DATABASE_URL", database_url),
        ("CSBS__DATABASE__POOL_MODE", pool_mode_name(database_url)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("CSBS__DATA_DIR".to_owned(), data_dir.display().to_string())])
    .collect();
    Settings::load_from(None, &env).expect("test settings")
}

/// `database.pool_mode` for a service on `database_url` (see
/// [`csbs_test_support::pool_mode_for`]).
pub fn pool_mode_name(database_url: &str) -> &'static str {
    csbs_test_support::pool_mode_for(database_url).name()
}

/// `csbs-api serve` of the built binary on `db`, with `data_dir`, on a free port (answered
/// with the command), before it is spawned: the caller adds its settings.
pub fn serve_command(
    db: &TestDatabase,
    data_dir: &std::path::Path,
) -> (u16, std::process::Command) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_csbs-api"));
    command
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("CSBS__DATABASE__POOL_MODE", pool_mode_name(db.url()))
        .env("CSBS__DATA_DIR", data_dir)
        .env("CSBS__SERVER__BIND", format!("127.0.0.1:{port}"));
    (port, command)
}

impl TestApp {
    /// Starts the service on `db`, with a `/test/panic` route that panics.
    pub async fn spawn(db: TestDatabase) -> Self {
        let settings = test_settings(db.url());
        let label = format!("{db:?}");
        Self::spawn_with(settings, Some(db), label).await
    }

    /// Starts the service with `settings`.
    pub async fn spawn_with(
        settings: Settings,
        db: Option<TestDatabase>,
        db_label: String,
    ) -> Self {
        let data_dir = settings.data_dir.clone();
        let extra: csbs_api::startup::ExtraRoutes = Arc::new(|cfg: &mut web::ServiceConfig| {
            cfg.service(
                web::resource("/test/panic")
                    .wrap(actix_web::middleware::from_fn(
                        csbs_api::envelope::catch_panics,
                    ))
                    .route(web::get().to(panicking_handler)),
            );
        });
        let application = Application::build_with(settings, extra).expect("the application builds");
        let address = format!("http://127.0.0.1:{}", application.port());
        let state = application.state().clone();
        actix_web::rt::spawn(application.run_until_stopped());
        Self {
            address,
            state,
            client: reqwest::Client::new(),
            db_label,
            _db: db,
            data_dir,
        }
    }

    /// A token for `project` with `roles`, valid for an hour.
    pub fn token(&self, project: &str, roles: &[&str]) -> String {
        let project = ProjectId::parse("project_id", project).unwrap();
        let claims = Claims::new(
            "tester",
            &project,
            roles.iter().map(|r| (*r).to_owned()).collect(),
            std::time::Duration::from_secs(3600),
        );
        mint_hs256(&SecretString::from(SECRET.to_owned()), &claims).unwrap()
    }

    /// Stores `records` directly through the repository.
    pub fn store(&self, records: &[BackupRecord]) {
        self.state.repository.upsert(records).unwrap();
    }

    /// `method path` with `token`, a JSON `body` and an `Idempotency-Key` when given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address))
            .header("X-Auth-Token", token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// `GET path` with `token` in `X-Auth-Token`.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .header("X-Auth-Token", token)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` as the owner of `project`, expecting 200, returning the JSON body.
    pub async fn get_json(&self, project: &str, path: &str) -> Value {
        let response = self.get(path, &self.token(project, &[])).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{}: GET {path}: {body}", self.db_label);
        body
    }

    /// `GET /v1/{project}/checkpoint_items/count?{query}` as the tenant itself.
    pub async fn count(&self, project: &str, query: &str) -> u64 {
        let body = self
            .get_json(
                project,
                &format!("/v1/{project}/checkpoint_items/count?{query}"),
            )
            .await;
        body["count"].as_u64().unwrap()
    }
}

async fn panicking_handler(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    // Panics with text that must never reach the client.
    if req.path().starts_with("/test/") {
        panic!("secret internals: SELECT * FROM backup_items");
    }
    actix_web::HttpResponse::Ok().finish()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// An item of `project` as an engine reports it new: [`item_json`] at version 1.
pub fn ingest_item(project: &str, overrides: Value) -> Value {
    let mut item = item_json(project, overrides);
    item["version"] = serde_json::json!(1);
    item
}

/// Asserts an error answer of spec §6: status, code, JSON body with the request id of the
/// headers.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response
            .headers()
            .get("x-openstack-request-id")
            .unwrap()
            .to_str()
            .unwrap(),
        request_id
    );
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], code, "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert!(
        body["error_msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}
