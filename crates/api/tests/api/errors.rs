//! Error answers of every origin carry the JSON body and request ids of spec §6.

use csbs_test_support::TestDatabase;

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

/// Sends `request` on a new connection and reads the answer until the server closes it.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body and request id of an answer read off the wire, after checking its status.
fn assert_raw_error(answer: &str, status: u16) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "{answer:?}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{head}");
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(json["error_code"], "CSBS.9001", "{json}");
    let id = json["request_id"].as_str().unwrap();
    assert!(lower.contains(&format!("x-request-id: {id}")), "{head}");
    assert!(
        lower.contains(&format!("x-openstack-request-id: {id}")),
        "{head}"
    );
}

/// The HTTP layer's own refusals (a request it cannot parse, a URI or head too long, headers
/// too slow) answered with an empty body and no request id; they carry both like every answer.
#[actix_web::test]
async fn the_http_layers_own_refusals_are_json_with_request_ids() {
    let db = TestDatabase::sqlite();
    let mut settings = crate::helpers::test_settings(db.url());
    settings.server.header_timeout_ms = 500;
    let app = TestApp::spawn_with(settings, Some(db), "SQLite".into()).await;

    let long_uri = format!(
        "GET /v1/tenant-a/checkpoint_items/count?name={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    assert_raw_error(&raw_exchange(&app, long_uri.as_bytes()).await, 400);
    let huge_head = format!(
        "GET /healthz?name={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(1_000_000)
    );
    assert_raw_error(&raw_exchange(&app, huge_head.as_bytes()).await, 431);
    assert_raw_error(&raw_exchange(&app, b"GARBAGE\r\n\r\n").await, 400);
    assert_raw_error(
        &raw_exchange(
            &app,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        )
        .await,
        400,
    );
    // Headers that never end.
    assert_raw_error(
        &raw_exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await,
        408,
    );

    // A good request after a refusal on the same connection's heels is served.
    let answer = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}
