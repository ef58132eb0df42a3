//! Requests made to hurt the service (found by attacking it) get a clear answer, and the
//! service keeps serving everyone else.

use csbs_storage::backend_tests;
use csbs_storage::testing::{item_record, TestDatabase};
use serde_json::json;

use crate::helpers::{assert_error, TestApp};

/// Thousands of values of one filter once overflowed the stack while the SQL was built (a
/// nested OR per value), killing the process; on SQLite a thousand made the expression too deep.
async fn many_values_of_a_filter_are_refused_not_a_crash(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.store(&[
        item_record(
            "tenant-a",
            json!({"name": "web-1", "resource_id": "server-1"}),
        ),
        item_record(
            "tenant-a",
            json!({"name": "db-1", "resource_id": "server-2"}),
        ),
    ]);
    let token = app.token("tenant-a", &[]);

    let flood = vec!["name=a"; 8150].join("&");
    let response = app
        .get(
            &format!("/v1/tenant-a/checkpoint_items/count?{flood}"),
            &token,
        )
        .await;
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(
        body["error_msg"].as_str().unwrap().contains("name"),
        "{}: {body}",
        app.db_label
    );
    let response = app
        .get(&format!("/v1/tenant-a/checkpoint_items?{flood}"), &token)
        .await;
    assert_error(response, 400, "CSBS.9001").await;

    // The most values every filter may have, all at once: answered, and exactly.
    let mut query: Vec<String> = Vec::new();
    for i in 0..99 {
        query.push(format!("name=zz{i}"));
        query.push(format!("resource_id=nothing-{i}"));
    }
    query.push("name=web".into());
    query.push("resource_id=server-1".into());
    let query = query.join("&");
    assert_eq!(app.count("tenant-a", &query).await, 1, "{}", app.db_label);
    let body = app
        .get_json(
            "tenant-a",
            &format!("/v1/tenant-a/checkpoint_items?{query}"),
        )
        .await;
    assert_eq!(body["checkpoint_items"].as_array().unwrap().len(), 1);

    // And the service is still there for everyone.
    assert_eq!(app.count("tenant-a", "").await, 2, "{}", app.db_label);
}

/// Every request with a new made-up method once added series to `/metrics` (202,000 requests
/// made it 317 MB): no label may take its values from the client.
#[actix_web::test]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let scrape = || async {
        app.client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let send = |method: String, path: String| {
        let request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", app.address),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // One round of everything first, so that every label value the service has exists.
    assert_eq!(send("GET".into(), "/healthz".into()).await, 200);
    assert_eq!(send("BREW".into(), "/healthz".into()).await, 405);
    assert_eq!(send("GET".into(), "/no/such/0".into()).await, 404);
    assert_eq!(send("BREW".into(), "/no/such/0".into()).await, 404);
    scrape().await;
    let before = series(&scrape().await);
    for i in 0..200 {
        let method: String = format!("M{i:04}XQZWJ").chars().collect();
        assert_eq!(send(method.clone(), "/healthz".into()).await, 405);
        send(method, format!("/no/such/{i}")).await;
        send("GET".into(), format!("/no/such/{i}?x={i}")).await;
    }
    let text = scrape().await;
    assert_eq!(series(&text), before, "{text}");
    assert!(
        text.contains(
            r#"csbs_http_requests_total{method="other",route="/healthz",status="405"} 201"#
        ),
        "{text}"
    );
}

backend_tests!(async: many_values_of_a_filter_are_refused_not_a_crash);
