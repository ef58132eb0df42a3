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

backend_tests!(async: many_values_of_a_filter_are_refused_not_a_crash);
