//! Count, list and show over HTTP.

use csbs_test_support::{backend_tests, execute_sql, item_record, TestDatabase};
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};

fn ids(body: &Value) -> Vec<String> {
    body["checkpoint_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn count_list_and_show_agree(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let mut records: Vec<_> = (0..7)
        .map(|i| {
            item_record(
                "tenant-a",
                json!({
                    "name": format!("web-{i}"),
                    "status": (["available", "error", "deleted"][i % 3]),
                    "created_at": format!("2021-03-0{}T10:00:00", i + 1),
                }),
            )
        })
        .collect();
    records.push(item_record("tenant-b", json!({"name": "web-other"})));
    app.store(&records);

    assert_eq!(app.count("tenant-a", "").await, 5, "{}", app.db_label);
    assert_eq!(app.count("tenant-a", "status=deleted").await, 2);
    assert_eq!(
        app.count("tenant-a", "status=deleted&status=available")
            .await,
        5
    );
    assert_eq!(app.count("tenant-b", "").await, 1);

    let body = app
        .get_json("tenant-a", "/v1/tenant-a/checkpoint_items")
        .await;
    let listed = ids(&body);
    assert_eq!(listed.len(), 5);
    assert!(
        body.get("checkpoint_items_links").is_none(),
        "no next page: {body}"
    );
    // Default order: newest first.
    let expected: Vec<String> = records[..7]
        .iter()
        .rev()
        .filter(|r| r.status.as_str() != "deleted")
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(listed, expected);

    let visible = &records[0];
    let shown = app
        .get_json(
            "tenant-a",
            &format!("/v1/tenant-a/checkpoint_items/{}", visible.id),
        )
        .await;
    let stored: Value = serde_json::from_str(&visible.document).unwrap();
    assert_eq!(shown["checkpoint_item"], stored);

    let token = app.token("tenant-a", &[]);
    let deleted = &records[2];
    let response = app
        .get(
            &format!("/v1/tenant-a/checkpoint_items/{}", deleted.id),
            &token,
        )
        .await;
    assert_error(response, 404, "CSBS.3001").await;
    let theirs = &records[7];
    let response = app
        .get(
            &format!("/v1/tenant-a/checkpoint_items/{}", theirs.id),
            &token,
        )
        .await;
    assert_error(response, 404, "CSBS.3001").await;
    let unknown = uuid::Uuid::new_v4();
    let response = app
        .get(&format!("/v1/tenant-a/checkpoint_items/{unknown}"), &token)
        .await;
    assert_error(response, 404, "CSBS.3001").await;
    let response = app
        .get("/v1/tenant-a/checkpoint_items/not-a-uuid", &token)
        .await;
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(body["error_msg"]
        .as_str()
        .unwrap()
        .contains("checkpoint_item_id"));
}

async fn numbers_nulls_and_unknown_keys_survive_the_round_trip(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let text = r#"{"id": "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12", "name": "n", "status": "available",
        "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "resource_id": "r",
        "resource_type": "OS::Nova::Server", "created_at": "2018-08-14T07:53:15.663766",
        "protected_at": null, "extend_info": {"average_speed": 25.2, "space_saving_ratio": 6.50,
        "copy_from": null, "progress": 100, "brand_new_key": [1.5e3, {"x": null}]},
        "project_id": "tenant-a"}"#;
    let record = csbs_domain::BackupRecord::from_json(serde_json::from_str(text).unwrap()).unwrap();
    app.store(&[record]);
    for path in [
        "/v1/tenant-a/checkpoint_items/7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12",
        "/v1/tenant-a/checkpoint_items",
    ] {
        let response = app.get(path, &app.token("tenant-a", &[])).await;
        let raw = response.text().await.unwrap();
        for fragment in [
            "\"average_speed\":25.2",
            "\"space_saving_ratio\":6.50",
            "\"copy_from\":null",
            "\"protected_at\":null",
            "{\"x\":null}",
        ] {
            assert!(
                raw.contains(fragment),
                "{}: {fragment} in {raw}",
                app.db_label
            );
        }
        // An exponent may be respelt (`1.5e+3`), but stays the same floating-point number.
        let body: Value = serde_json::from_str(&raw).unwrap();
        let item = body
            .get("checkpoint_item")
            .unwrap_or(&body["checkpoint_items"][0]);
        let number = &item["extend_info"]["brand_new_key"][0];
        assert!(
            number.is_f64() && number.as_f64() == Some(1500.0),
            "{number}"
        );
    }
}

async fn pages_link_to_the_next_until_the_last(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let records: Vec<_> = (0..11)
        .map(|i| {
            item_record(
                "tenant-a",
                json!({"name": format!("item-{i:02}"), "created_at": "2022-01-01T00:00:00"}),
            )
        })
        .collect();
    app.store(&records);
    let token = app.token("tenant-a", &[]);

    let mut url = format!(
        "{}/v1/tenant-a/checkpoint_items?limit=4&sort=name:asc",
        app.address
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = app
            .client
            .get(&url)
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        seen.extend(ids(&body));
        pages += 1;
        match body["checkpoint_items_links"].as_array() {
            Some(links) => {
                assert_eq!(links[0]["rel"], "next");
                url = links[0]["href"].as_str().unwrap().to_owned();
                assert!(
                    url.contains("sort=name%3Aasc"),
                    "the next link keeps the query: {url}"
                );
            }
            None => break,
        }
    }
    assert_eq!(pages, 3, "{}", app.db_label);
    let mut expected: Vec<_> = records
        .iter()
        .map(|r| (r.name.clone(), r.id.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        seen,
        expected.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );

    let body = app
        .get_json(
            "tenant-a",
            "/v1/tenant-a/checkpoint_items?limit=2&offset=3&sort=name:asc",
        )
        .await;
    assert_eq!(ids(&body), seen[3..5].to_vec(), "offset skips");
    let marker = &seen[1];
    let body = app
        .get_json(
            "tenant-a",
            &format!(
                "/v1/tenant-a/checkpoint_items?limit=2&offset=1&sort=name:asc&marker={marker}"
            ),
        )
        .await;
    assert_eq!(
        ids(&body),
        seen[3..5].to_vec(),
        "offset counts after the marker"
    );

    let full = app
        .get_json("tenant-a", "/v1/tenant-a/checkpoint_items?limit=11")
        .await;
    assert!(
        full.get("checkpoint_items_links").is_none(),
        "an exactly full last page has no link"
    );

    let unknown = uuid::Uuid::new_v4();
    let response = app
        .get(
            &format!("/v1/tenant-a/checkpoint_items?marker={unknown}"),
            &token,
        )
        .await;
    let body = assert_error(response, 400, "CSBS.9001").await;
    assert!(body["error_msg"].as_str().unwrap().contains("marker"));
}

async fn filters_arrive_as_sdks_send_them(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.store(&[
        item_record(
            "tenant-a",
            json!({"name": "Web 50%", "created_at": "2020-05-05T10:00:00",
            "extend_info": {"resource_az": "eu-de-01"}, "backup_data": {"eip": "2001:db8::7"}}),
        ),
        item_record(
            "tenant-a",
            json!({"name": "db", "status": "error", "created_at": "2020-05-05T12:00:00"}),
        ),
    ]);
    let cases = [
        ("name=Web%2050%25", 1),
        ("name=web", 0),
        ("name=Web+50", 1),
        ("start_time=2020-05-05T11:00:00", 1),
        // An unescaped `+` in the zone arrives as a space and still means `+`.
        ("start_time=2020-05-05T11:00:00+01:00", 2),
        ("start_time=2020-05-05T11:00:00%2B01:00", 2),
        ("start_time=2020-05-05T12:00:00%2B01:00", 1),
        ("end_time=2020-05-05T11:00:00Z", 1),
        ("ip=2001:DB8:0::7", 1),
        ("az=eu-de-01&status=available", 1),
        ("status=error&status=available", 2),
        ("dec=True", 2),
        ("limit=5&marker=abc&offset=-1&sort=bogus", 2),
    ];
    for (query, expected) in cases {
        assert_eq!(
            app.count("tenant-a", query).await,
            expected,
            "{}: {query}",
            app.db_label
        );
    }
    let token = app.token("tenant-a", &[]);
    for (query, parameter) in [
        ("stauts=available", "stauts"),
        ("status=availble", "status"),
        ("name=", "name"),
        ("ip=not-an-ip", "ip"),
        (
            "start_time=2020-05-06T00:00:00&end_time=2020-05-05T00:00:00",
            "start_time",
        ),
        ("all_tenants=maybe", "all_tenants"),
    ] {
        let response = app
            .get(
                &format!("/v1/tenant-a/checkpoint_items/count?{query}"),
                &token,
            )
            .await;
        let body = assert_error(response, 400, "CSBS.9001").await;
        assert!(
            body["error_msg"].as_str().unwrap().contains(parameter),
            "{query}: {body}"
        );
    }
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("sort=size", "sort"),
        ("offset=x", "offset"),
    ] {
        let response = app
            .get(&format!("/v1/tenant-a/checkpoint_items?{query}"), &token)
            .await;
        let body = assert_error(response, 400, "CSBS.9001").await;
        assert!(
            body["error_msg"].as_str().unwrap().contains(parameter),
            "{query}: {body}"
        );
    }
}

/// A stored document that is no longer one JSON object (a truncated or emptied row, a hand
/// edit) is a logged 500 with the usual error body, never spliced into an answer. Documents
/// are checked when they are written; the read path checks only that the text is an object.
async fn a_stored_document_that_is_not_an_object_is_a_500(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let record = item_record("tenant-a", json!({"name": "n"}));
    let id = record.id.as_str().to_owned();
    app.store(&[record]);
    let token = app.token("tenant-a", &[]);
    for damaged in [
        "{\"id\": broken",
        "",
        "  ",
        "[\"broken\"]",
        "\"id\": \"broken\"}",
    ] {
        execute_sql(
            &app.state.repository,
            &format!("UPDATE backup_items SET document = '{damaged}'"),
        );
        for path in [
            format!("/v1/tenant-a/checkpoint_items/{id}"),
            "/v1/tenant-a/checkpoint_items".to_owned(),
        ] {
            let body = assert_error(app.get(&path, &token).await, 500, "CSBS.9999").await;
            assert!(
                !body.to_string().contains("broken"),
                "{}: {damaged:?}: no stored text in the error: {body}",
                app.db_label
            );
        }
    }
}

backend_tests!(
    async:
    a_stored_document_that_is_not_an_object_is_a_500,
    count_list_and_show_agree,
    numbers_nulls_and_unknown_keys_survive_the_round_trip,
    pages_link_to_the_next_until_the_last,
    filters_arrive_as_sdks_send_them,
);
