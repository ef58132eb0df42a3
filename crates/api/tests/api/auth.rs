//! Authentication and authorisation over HTTP (spec §5).

use csbs_test_support::{backend_tests, item_record, TestDatabase};
use serde_json::json;

use crate::helpers::{assert_error, TestApp};

async fn tokens_tenants_and_administrators(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.store(&[
        item_record("tenant-a", json!({})),
        item_record("tenant-b", json!({})),
        item_record("tenant-b", json!({})),
    ]);
    let url = format!("{}/v1/tenant-a/checkpoint_items/count", app.address);

    let response = app.client.get(&url).send().await.unwrap();
    assert_error(response, 401, "APIGW.0301").await;
    for bad in ["garbage", "a.b.c", &"x".repeat(9000)] {
        let response = app
            .client
            .get(&url)
            .header("X-Auth-Token", bad)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "APIGW.0301").await;
    }
    let foreign = {
        let claims = csbs_auth::Claims::new(
            "u",
            &csbs_domain::ProjectId::parse("p", "tenant-a").unwrap(),
            vec![],
            std::time::Duration::from_secs(60),
        );
        csbs_auth::mint_hs256(
            &secrecy::SecretString::from("another-secret-0123456789abcdef-xyz".to_owned()),
            &claims,
        )
        .unwrap()
    };
    let response = app
        .client
        .get(&url)
        .header("X-Auth-Token", &foreign)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "APIGW.0301").await;

    let own = app.token("tenant-a", &[]);
    // SDKs send a JSON content type on bodiless GETs and various Accept values.
    let response = app
        .client
        .get(&url)
        .header("Authorization", format!("Bearer {own}"))
        .header("Content-Type", "application/json")
        .header("Accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", app.db_label);

    let response = app.get("/v1/tenant-b/checkpoint_items/count", &own).await;
    assert_error(response, 403, "APIGW.0302").await;
    let response = app
        .get("/v1/tenant-a/checkpoint_items/count?all_tenants=true", &own)
        .await;
    assert_error(response, 403, "APIGW.0302").await;
    let response = app
        .get("/v1/tenant-a/checkpoint_items?all_tenants=1", &own)
        .await;
    assert_error(response, 403, "APIGW.0302").await;
    assert_eq!(app.count("tenant-a", "all_tenants=false").await, 1);

    let admin = app.token("tenant-a", &["admin"]);
    let response = app.get("/v1/tenant-b/checkpoint_items/count", &admin).await;
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["count"],
        2
    );
    let response = app
        .get(
            "/v1/tenant-a/checkpoint_items/count?all_tenants=True",
            &admin,
        )
        .await;
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["count"],
        3,
        "{}",
        app.db_label
    );
    let response = app
        .get(
            "/v1/tenant-a/checkpoint_items?all_tenants=yes&limit=1000",
            &admin,
        )
        .await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checkpoint_items"].as_array().unwrap().len(), 3);

    let service = app.token("tenant-a", &["csbs_service"]);
    let response = app
        .get("/v1/tenant-b/checkpoint_items/count", &service)
        .await;
    assert_error(response, 403, "APIGW.0302").await;
}

backend_tests!(
    async:
    tokens_tenants_and_administrators,
);
