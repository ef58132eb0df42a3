//! What operators watch: `/metrics` in Prometheus text.

use csbs_test_support::TestDatabase;

use crate::helpers::{test_settings, TestApp};

fn value_of(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_web::test]
async fn metrics_count_requests_pool_and_errors() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    for _ in 0..3 {
        app.count("tenant-a", "").await;
    }
    let _ = app
        .get(
            "/v1/tenant-a/checkpoint_items/count?stauts=x",
            &app.token("tenant-a", &[]),
        )
        .await;
    let _ = app
        .client
        .get(format!("{}/no/such/thing", app.address))
        .send()
        .await
        .unwrap();
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();

    let count_ok = r#"csbs_http_requests_total{method="GET",route="/v1/{project_id}/checkpoint_items/count",status="200"}"#;
    assert_eq!(value_of(&text, count_ok), Some(3.0), "{text}");
    let count_bad = r#"csbs_http_requests_total{method="GET",route="/v1/{project_id}/checkpoint_items/count",status="400"}"#;
    assert_eq!(value_of(&text, count_bad), Some(1.0));
    let unknown = r#"csbs_http_requests_total{method="GET",route="(no route)",status="404"}"#;
    assert_eq!(
        value_of(&text, unknown),
        Some(1.0),
        "unknown paths share one label"
    );
    assert!(text.contains("csbs_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/{project_id}/checkpoint_items/count\",le=\"0.005\"}"));
    assert!(value_of(&text, "csbs_db_pool_max_connections").is_some_and(|v| v >= 1.0));
    assert!(value_of(&text, "csbs_db_pool_connections").is_some_and(|v| v >= 1.0));
    assert!(text.contains("csbs_db_pool_waiting_requests 0"));
    assert!(
        value_of(&text, "csbs_process_resident_memory_bytes").is_some_and(|v| v > 0.0),
        "{text}"
    );
}

#[actix_web::test]
async fn database_errors_are_counted() {
    let url = "postgres://postgres@127.0.0.1:1/none";
    let app = TestApp::spawn_with(test_settings(url), None, url.into()).await;
    let _ = app
        .get(
            "/v1/tenant-a/checkpoint_items/count",
            &app.token("tenant-a", &[]),
        )
        .await;
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("csbs_http_requests_total{method=\"GET\",route=\"/v1/{project_id}/checkpoint_items/count\",status=\"503\"} 1"), "{text}");
    assert!(
        value_of(&text, "csbs_database_errors_total{kind=\"unavailable\"}")
            .is_some_and(|v| v >= 1.0),
        "{text}"
    );
}
