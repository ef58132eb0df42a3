//! Error answers of every origin carry the JSON body and request ids of spec §6.

use csbs_storage::testing::TestDatabase;

use crate::helpers::{assert_error, TestApp};

#[actix_web::test]
async fn every_error_has_the_json_body_and_request_ids() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let token = app.token("tenant-a", &[]);

    let response = app.get("/no/such/route", &token).await;
    assert_error(response, 404, "APIGW.0101").await;
    let response = app
        .client
        .delete(format!("{}/v1/tenant-a/checkpoint_items", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    assert_error(response, 405, "APIGW.0101").await;
    // A 405 says which methods the route takes (RFC 9110 §15.5.6).
    let item = "/ingest/v1/tenant-a/checkpoint_items/7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12";
    let response = app
        .client
        .post(format!("{}{item}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, PUT");
    assert_error(response, 405, "APIGW.0101").await;
    let response = app
        .get(
            "/v1/tenant%20a/checkpoint_items/count",
            &app.token("tenant-a", &["admin"]),
        )
        .await;
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(body["error_msg"].as_str().unwrap().contains("project_id"));

    let response = app.get("/test/panic", &token).await;
    let body = assert_error(response, 500, "CSBS.9999").await;
    let text = body.to_string();
    assert!(
        !text.contains("SELECT") && !text.contains("secret"),
        "nothing internal leaks: {text}"
    );
    // The worker survived the panic.
    assert_eq!(app.count("tenant-a", "").await, 0);
}

#[actix_web::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    assert_eq!(
        response.headers()["x-openstack-request-id"],
        "client-chosen-42"
    );

    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.starts_with("req-"), "{generated}");
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
