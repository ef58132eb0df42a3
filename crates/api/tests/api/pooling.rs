//! A service configured for sessions of its own (`database.pool_mode = "session"`, the
//! default) behind whatever is between it and PostgreSQL: PostgreSQL itself, or the PgBouncer
//! the tests may go through (`CSBS_TEST_PGBOUNCER_URL`). Behind a transaction-mode PgBouncer
//! its first connection sees the server sessions lent per transaction and turns prepared
//! statements off, and every request still works; elsewhere the mode stays `session`.

use csbs_storage::PoolMode;
use csbs_test_support::{pgbouncer, postgres_database};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{ingest_item, test_settings, TestApp};

#[actix_web::test]
async fn session_mode_behind_postgres_or_pgbouncer_finds_the_pool_mode() {
    let Some(db) = postgres_database() else {
        return;
    };
    let expected = pgbouncer().map_or(PoolMode::Session, |pooler| pooler.mode);
    let mut settings = test_settings(db.url());
    settings.database.pool_mode.0 = PoolMode::Session;
    let label = format!("{db:?} behind {:?}", pgbouncer());
    let app = TestApp::spawn_with(settings, Some(db), label.clone()).await;

    // Enough distinct statements, on several connections, for a cached one to be run on a
    // server session that lacks it (or holds another's of the same name) if caching stayed on.
    let service = app.token("tenant-a", &["csbs_service"]);
    for round in 0..20 {
        let item = ingest_item("tenant-a", json!({"name": format!("pooled-{round}")}));
        let id = item["id"].as_str().unwrap().to_owned();
        let path = format!("/ingest/v1/tenant-a/checkpoint_items/{id}");
        let stored = app
            .send(Method::PUT, &path, &service, Some(&item), None)
            .await;
        assert_eq!(stored.status(), 201, "{label}: round {round}");
        let queries = [
            String::new(),
            "status=available".to_owned(),
            format!("name=pooled-{round}"),
            "resource_type=OS::Nova::Server&status=available".to_owned(),
        ];
        let counts = futures_util::future::join_all(
            queries.iter().map(|query| app.count("tenant-a", query)),
        )
        .await;
        assert_eq!(counts[0], round + 1, "{label}: round {round}");
        assert_eq!(counts[2], 1, "{label}: round {round}");
        let shown = app
            .get_json("tenant-a", &format!("/v1/tenant-a/checkpoint_items/{id}"))
            .await;
        assert_eq!(shown["checkpoint_item"]["id"], id.as_str(), "{label}");
    }
    assert_eq!(app.state.repository.pool_mode(), expected, "{label}");
}
