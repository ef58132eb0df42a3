//! The ingest API of backup engines, the public deletion, and counts that follow every write.

use csbs_test_support::{backend_tests, item_json, query_i64, TestDatabase};
use serde_json::{json, Value};

use crate::helpers::{assert_error, ingest_item, TestApp};

const PROVIDER: &str = "fc4d5750-22e7-4798-8a46-f48f62c4c1da";

impl TestApp {
    fn engine(&self) -> String {
        self.token("engine-project", &["csbs_service"])
    }

    async fn put_item(&self, project: &str, item: &Value, key: Option<&str>) -> reqwest::Response {
        let id = item["id"].as_str().unwrap();
        let path = format!("/ingest/v1/{project}/checkpoint_items/{id}");
        self.send(reqwest::Method::PUT, &path, &self.engine(), Some(item), key)
            .await
    }

    async fn set_status(&self, project: &str, id: &str, body: Value) -> reqwest::Response {
        let path = format!("/ingest/v1/{project}/checkpoint_items/{id}/status");
        self.send(
            reqwest::Method::POST,
            &path,
            &self.engine(),
            Some(&body),
            None,
        )
        .await
    }

    async fn delete_checkpoint(
        &self,
        project: &str,
        checkpoint: &str,
        query: &str,
    ) -> reqwest::Response {
        let path = format!("/v1/{project}/providers/{PROVIDER}/checkpoints/{checkpoint}{query}");
        self.send(
            reqwest::Method::DELETE,
            &path,
            &self.token(project, &[]),
            None,
            None,
        )
        .await
    }
}

/// An item body for the ingest API (no tenant: the path names it).
fn new_item(overrides: Value) -> Value {
    let mut item = item_json("x", overrides);
    let object = item.as_object_mut().unwrap();
    object.remove("project_id");
    object.insert("version".into(), json!(1));
    item
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

async fn items_are_created_replaced_and_moved_through_their_lifecycle(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let item = new_item(json!({"status": "waiting_protect", "name": "engine-made"}));
    let id = item["id"].as_str().unwrap().to_owned();

    let created = json_of(app.put_item("tenant-a", &item, None).await, 201).await;
    assert_eq!(created["version"], 1, "{}", app.db_label);
    assert_eq!(created["checkpoint_item"]["name"], "engine-made");
    assert_eq!(app.count("tenant-a", "status=waiting_protect").await, 1);
    // The same write again is a retry: same answer, nothing changes.
    let again = json_of(app.put_item("tenant-a", &item, None).await, 201).await;
    assert_eq!(again, created);

    let mut renamed = item.clone();
    renamed["name"] = json!("renamed");
    assert_error(
        app.put_item("tenant-a", &renamed, None).await,
        409,
        "CSBS.9409",
    )
    .await;
    renamed["version"] = json!(2);
    let replaced = json_of(app.put_item("tenant-a", &renamed, None).await, 200).await;
    assert_eq!(replaced["version"], 2);
    renamed["version"] = json!(4);
    assert_error(
        app.put_item("tenant-a", &renamed, None).await,
        409,
        "CSBS.9409",
    )
    .await;

    let progress = json_of(
        app.set_status(
            "tenant-a",
            &id,
            json!({"status": "protecting", "version": 3, "extend_info": {"progress": 40}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(progress["checkpoint_item"]["extend_info"]["progress"], 40);
    assert_eq!(
        progress["checkpoint_item"]["extend_info"]["average_speed"], 25.2,
        "other members kept"
    );
    assert_ne!(
        progress["checkpoint_item"]["updated_at"],
        created["checkpoint_item"]["updated_at"]
    );
    assert_eq!(app.count("tenant-a", "status=protecting").await, 1);
    assert_eq!(app.count("tenant-a", "status=waiting_protect").await, 0);

    let body = assert_error(
        app.set_status("tenant-a", &id, json!({"status": "deleted", "version": 4}))
            .await,
        409,
        "CSBS.9409",
    )
    .await;
    let message = body["error_msg"].as_str().unwrap();
    assert!(
        message.contains("protecting") && message.contains("deleted"),
        "{message}"
    );

    let done = json_of(
        app.set_status("tenant-a", &id, json!({"status": "available", "version": 4,
            "protected_at": "2024-01-01T00:00:00Z", "extend_info": {"progress": 100, "size": 146184.5}})).await,
        200,
    )
    .await;
    assert_eq!(
        done["checkpoint_item"]["protected_at"],
        "2024-01-01T00:00:00.000000"
    );
    let shown = app
        .get_json("tenant-a", &format!("/v1/tenant-a/checkpoint_items/{id}"))
        .await;
    assert_eq!(
        shown["checkpoint_item"], done["checkpoint_item"],
        "reads see every acknowledged write"
    );
    let read = json_of(
        app.send(
            reqwest::Method::GET,
            &format!("/ingest/v1/tenant-a/checkpoint_items/{id}"),
            &app.engine(),
            None,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(read["version"], 4);

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(
        app.set_status(
            "tenant-a",
            &unknown,
            json!({"status": "available", "version": 2}),
        )
        .await,
        404,
        "CSBS.3001",
    )
    .await;
    let body = assert_error(
        app.set_status("tenant-a", &id, json!({"status": "available"}))
            .await,
        400,
        "CSBS.9001",
    )
    .await;
    assert!(body["error_msg"].as_str().unwrap().contains("version"));
    let mut bad = new_item(json!({}));
    bad["created_at"] = json!("yesterday");
    let body = assert_error(app.put_item("tenant-a", &bad, None).await, 400, "CSBS.9001").await;
    assert!(body["error_msg"].as_str().unwrap().contains("created_at"));
}

async fn only_the_service_role_may_ingest(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let item = new_item(json!({}));
    let path = format!(
        "/ingest/v1/tenant-a/checkpoint_items/{}",
        item["id"].as_str().unwrap()
    );
    for token in [
        app.token("tenant-a", &[]),
        app.token("tenant-a", &["admin"]),
    ] {
        let response = app
            .send(reqwest::Method::PUT, &path, &token, Some(&item), None)
            .await;
        assert_error(response, 403, "APIGW.0302").await;
    }
    let response = app
        .client
        .put(format!("{}{path}", app.address))
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "APIGW.0301").await;
    assert_eq!(app.count("tenant-a", "").await, 0, "{}", app.db_label);
}

/// By default one engine serves every tenant (its token's project is its own, not a bound);
/// `auth.service_tenants = own` binds each engine token to its project.
#[actix_web::test]
async fn engines_may_be_bound_to_their_own_tenant() {
    for (tenants, into_other) in [
        (csbs_auth::ServiceTenants::Any, 201),
        (csbs_auth::ServiceTenants::Own, 403),
    ] {
        let db = csbs_test_support::TestDatabase::sqlite();
        let mut settings = crate::helpers::test_settings(db.url());
        settings.auth.service_tenants = tenants;
        let app = TestApp::spawn_with(settings, Some(db), "SQLite".into()).await;
        let engine = app.token("engines", &["csbs_service"]);
        for (project, expected) in [("tenant-b", into_other), ("engines", 201)] {
            let item = ingest_item(project, json!({}));
            let path = format!(
                "/ingest/v1/{project}/checkpoint_items/{}",
                item["id"].as_str().unwrap()
            );
            let response = app
                .send(reqwest::Method::PUT, &path, &engine, Some(&item), None)
                .await;
            assert_eq!(
                response.status(),
                expected,
                "{tenants:?} into {project}: {:?}",
                response.text().await
            );
        }
    }
}

/// A write reads the clock once: the `updated_at` it stamps is the instant its idempotency
/// record was kept from, so the 24-hour window starts exactly when the item changed.
async fn a_write_is_stamped_and_remembered_at_one_instant(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let item = new_item(json!({"status": "protecting"}));
    let id = item["id"].as_str().unwrap().to_owned();
    json_of(app.put_item("tenant-a", &item, Some("create-1")).await, 201).await;
    let stored = query_i64(
        &app.state.repository,
        &format!("SELECT updated_at_us AS value FROM backup_items WHERE id = '{id}'"),
    );
    let remembered = query_i64(
        &app.state.repository,
        "SELECT created_at_us AS value FROM ingest_requests WHERE idempotency_key = 'create-1'",
    );
    assert_eq!(stored.len(), 1, "{}", app.db_label);
    assert_eq!(remembered, stored, "{}", app.db_label);
}

async fn idempotency_keys_answer_retries_as_the_first_time(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let item = new_item(json!({"status": "protecting"}));
    let id = item["id"].as_str().unwrap().to_owned();
    let first = json_of(app.put_item("tenant-a", &item, Some("create-1")).await, 201).await;
    json_of(
        app.set_status(
            "tenant-a",
            &id,
            json!({"status": "available", "version": 2}),
        )
        .await,
        200,
    )
    .await;
    // The item moved on; the retried create still gets its first answer and changes nothing.
    let retried = json_of(app.put_item("tenant-a", &item, Some("create-1")).await, 201).await;
    assert_eq!(retried, first, "{}", app.db_label);
    assert_eq!(app.count("tenant-a", "status=available").await, 1);

    let mut other = item.clone();
    other["name"] = json!("different");
    let body = assert_error(
        app.put_item("tenant-a", &other, Some("create-1")).await,
        409,
        "CSBS.9409",
    )
    .await;
    assert!(body["error_msg"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    let response = app.put_item("tenant-a", &item, Some("")).await;
    assert_error(response, 400, "CSBS.9001").await;
}

async fn bulk_reports_are_all_or_nothing(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let path = "/ingest/v1/tenant-a/checkpoint_items";
    let good: Vec<Value> = (0..5)
        .map(|i| new_item(json!({"name": format!("b{i}")})))
        .collect();
    let mut with_bad = good.clone();
    with_bad[3]["status"] = json!("exploded");
    let response = app
        .send(
            reqwest::Method::POST,
            path,
            &app.engine(),
            Some(&json!({"checkpoint_items": with_bad})),
            None,
        )
        .await;
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .contains("checkpoint_items[3].status"),
        "{body}"
    );
    assert_eq!(
        app.count("tenant-a", "").await,
        0,
        "{}: nothing stored",
        app.db_label
    );

    let response = app
        .send(
            reqwest::Method::POST,
            path,
            &app.engine(),
            Some(&json!({"checkpoint_items": good})),
            None,
        )
        .await;
    let body = json_of(response, 200).await;
    assert_eq!(body["checkpoint_items"].as_array().unwrap().len(), 5);
    assert_eq!(body["checkpoint_items"][0]["result"], "stored");
    assert_eq!(app.count("tenant-a", "").await, 5);

    // A stale item makes the whole request fail, even with new items beside it.
    let mut mixed = vec![new_item(json!({"name": "new"}))];
    let mut stale = good[1].clone();
    stale["name"] = json!("changed without a new version");
    mixed.push(stale);
    let response = app
        .send(
            reqwest::Method::POST,
            path,
            &app.engine(),
            Some(&json!({"checkpoint_items": mixed})),
            None,
        )
        .await;
    let body = assert_error(response, 409, "CSBS.9409").await;
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .contains("checkpoint_items[1]"),
        "{body}"
    );
    assert_eq!(app.count("tenant-a", "").await, 5);

    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let response = app
        .send(
            reqwest::Method::POST,
            path,
            &app.engine(),
            Some(&json!({"checkpoint_items": too_many})),
            None,
        )
        .await;
    assert_error(response, 400, "CSBS.9001").await;
    let response = app
        .send(
            reqwest::Method::POST,
            path,
            &app.engine(),
            Some(&json!({"items": []})),
            None,
        )
        .await;
    assert_error(response, 400, "CSBS.9001").await;
}

async fn deleting_a_backup_record_moves_its_items_to_waiting_delete(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let checkpoint = uuid::Uuid::new_v4().to_string();
    let items: Vec<Value> = ["available", "error", "available"]
        .iter()
        .map(|status| new_item(json!({"status": status, "checkpoint_id": checkpoint})))
        .collect();
    for item in &items {
        json_of(app.put_item("tenant-a", item, None).await, 201).await;
    }
    let busy_checkpoint = uuid::Uuid::new_v4().to_string();
    let busy = new_item(json!({"status": "protecting", "checkpoint_id": busy_checkpoint}));
    let calm = new_item(json!({"status": "available", "checkpoint_id": busy_checkpoint}));
    json_of(app.put_item("tenant-a", &busy, None).await, 201).await;
    json_of(app.put_item("tenant-a", &calm, None).await, 201).await;
    assert_eq!(
        app.count("tenant-a", "status=available").await,
        3,
        "{}",
        app.db_label
    );

    let one = items[0]["id"].as_str().unwrap();
    let response = app
        .delete_checkpoint("tenant-a", &checkpoint, &format!("?checkpoint_items={one}"))
        .await;
    assert_eq!(json_of(response, 200).await, json!({}));
    assert_eq!(app.count("tenant-a", "status=waiting_delete").await, 1);

    let response = app.delete_checkpoint("tenant-a", &checkpoint, "").await;
    assert_eq!(json_of(response, 200).await, json!({}));
    assert_eq!(app.count("tenant-a", "status=waiting_delete").await, 3);
    assert_eq!(app.count("tenant-a", "status=available").await, 1);
    // Harmless to repeat.
    assert_eq!(
        json_of(
            app.delete_checkpoint("tenant-a", &checkpoint, "").await,
            200
        )
        .await,
        json!({})
    );
    assert_eq!(app.count("tenant-a", "status=waiting_delete").await, 3);

    let body = assert_error(
        app.delete_checkpoint("tenant-a", &busy_checkpoint, "")
            .await,
        400,
        "CSBS.9001",
    )
    .await;
    let message = body["error_msg"].as_str().unwrap();
    assert!(
        message.contains(busy["id"].as_str().unwrap()) && message.contains("protecting"),
        "{message}"
    );
    assert_eq!(
        app.count("tenant-a", "status=available").await,
        1,
        "nothing changed"
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(
        app.delete_checkpoint("tenant-a", &unknown, "").await,
        404,
        "CSBS.3001",
    )
    .await;
    let stranger = uuid::Uuid::new_v4();
    assert_error(
        app.delete_checkpoint(
            "tenant-a",
            &checkpoint,
            &format!("?checkpoint_items={stranger}"),
        )
        .await,
        404,
        "CSBS.3001",
    )
    .await;
    let wrong_provider = format!(
        "/v1/tenant-a/providers/{}/checkpoints/{checkpoint}",
        uuid::Uuid::new_v4()
    );
    let response = app
        .send(
            reqwest::Method::DELETE,
            &wrong_provider,
            &app.token("tenant-a", &[]),
            None,
            None,
        )
        .await;
    assert_error(response, 404, "CSBS.3001").await;
    let response = app.delete_checkpoint("tenant-b", &checkpoint, "").await;
    assert_error(response, 404, "CSBS.3001").await;
    let foreign = format!("/v1/tenant-a/providers/{PROVIDER}/checkpoints/{checkpoint}");
    let response = app
        .send(
            reqwest::Method::DELETE,
            &foreign,
            &app.token("tenant-b", &[]),
            None,
            None,
        )
        .await;
    assert_error(response, 403, "APIGW.0302").await;
    let response = app
        .delete_checkpoint("tenant-a", &checkpoint, "?force=1")
        .await;
    assert_error(response, 400, "CSBS.9001").await;

    // The engine carries on from waiting_delete.
    for (status, version) in [("deleting", 3), ("deleted", 4)] {
        json_of(
            app.set_status(
                "tenant-a",
                one,
                json!({"status": status, "version": version}),
            )
            .await,
            200,
        )
        .await;
    }
    assert_eq!(app.count("tenant-a", "status=deleted").await, 1);
    assert_eq!(
        app.count("tenant-a", "").await,
        4,
        "deleted items leave the default count"
    );
}

async fn concurrent_engines_lose_no_acknowledged_write(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let items: Vec<Value> = (0..3)
        .map(|_| new_item(json!({"status": "protecting"})))
        .collect();
    for item in &items {
        json_of(app.put_item("tenant-a", item, None).await, 201).await;
    }
    let ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let engines = 4;
    let writes_per_engine = 6;
    let address = app.address.clone();
    let token = app.engine();

    let mut handles = Vec::new();
    for engine in 0..engines {
        let (address, token, ids) = (address.clone(), token.clone(), ids.clone());
        handles.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut acknowledged = Vec::new();
            for write in 0..writes_per_engine {
                let id = &ids[(engine + write) % ids.len()];
                let mark = format!("engine{engine}_write{write}");
                for _attempt in 0..200 {
                    let current: Value = client
                        .get(format!("{address}/ingest/v1/tenant-a/checkpoint_items/{id}"))
                        .header("X-Auth-Token", &token)
                        .send()
                        .unwrap()
                        .json()
                        .unwrap();
                    let next = current["version"].as_i64().unwrap() + 1;
                    let response = client
                        .post(format!("{address}/ingest/v1/tenant-a/checkpoint_items/{id}/status"))
                        .header("X-Auth-Token", &token)
                        .json(&json!({"status": "protecting", "version": next, "extend_info": {mark.clone(): true}}))
                        .send()
                        .unwrap();
                    match response.status().as_u16() {
                        200 => {
                            acknowledged.push((id.clone(), mark.clone()));
                            break;
                        }
                        409 => continue,
                        other => panic!("unexpected {other}: {}", response.text().unwrap()),
                    }
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for handle in handles {
        acknowledged.extend(
            actix_web::web::block(move || handle.join().unwrap())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        acknowledged.len(),
        engines * writes_per_engine,
        "{}: every write got through eventually",
        app.db_label
    );
    for id in &ids {
        let final_state = json_of(
            app.send(
                reqwest::Method::GET,
                &format!("/ingest/v1/tenant-a/checkpoint_items/{id}"),
                &app.engine(),
                None,
                None,
            )
            .await,
            200,
        )
        .await;
        let mine: Vec<_> = acknowledged.iter().filter(|(item, _)| item == id).collect();
        for (_, mark) in &mine {
            assert_eq!(
                final_state["checkpoint_item"]["extend_info"][mark.as_str()],
                true,
                "{}: {mark} lost",
                app.db_label
            );
        }
        assert_eq!(
            final_state["version"].as_i64().unwrap(),
            1 + mine.len() as i64,
            "one version per acknowledged write"
        );
    }
}

backend_tests!(
    async:
    a_write_is_stamped_and_remembered_at_one_instant,
    items_are_created_replaced_and_moved_through_their_lifecycle,
    only_the_service_role_may_ingest,
    idempotency_keys_answer_retries_as_the_first_time,
    bulk_reports_are_all_or_nothing,
    deleting_a_backup_record_moves_its_items_to_waiting_delete,
    concurrent_engines_lose_no_acknowledged_write,
);
