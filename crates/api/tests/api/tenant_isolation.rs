//! Property: whatever a tenant asks, with whatever filters and `all_tenants` spelling, it never
//! sees another tenant's item or count; only administrators cross tenants.

use csbs_domain::FromQueryPairs;
use csbs_domain::{BackupFilter, BackupRecord, CountQuery, ProjectId, TenantScope};
use csbs_test_support::{backend_tests, item_record, TestDatabase};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::helpers::TestApp;

const TENANTS: &[&str] = &["t0", "t1", "t2"];
const NAMES: &[&str] = &["web", "db", "Web-db"];
const STATUSES: &[&str] = &["available", "error", "deleted"];
const AZS: &[&str] = &["az1", "az2"];

fn dataset() -> Vec<BackupRecord> {
    let mut records = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        for i in 0..(4 + 3 * t) {
            records.push(item_record(
                tenant,
                json!({
                    "name": NAMES[i % NAMES.len()],
                    "status": STATUSES[(i + t) % STATUSES.len()],
                    "created_at": format!("2022-0{}-01T00:00:00", 1 + i % 9),
                    "extend_info": {"resource_az": AZS[i % 2]},
                    "backup_data": {"private_ip": format!("10.0.0.{}", i % 3)},
                }),
            ));
        }
    }
    records
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    let filters = proptest::collection::vec(
        prop_oneof![
            select(STATUSES).prop_map(|v| ("status".to_owned(), v.to_owned())),
            select(NAMES).prop_map(|v| ("name".to_owned(), v.to_owned())),
            select(AZS).prop_map(|v| ("az".to_owned(), v.to_owned())),
            (0..3u8).prop_map(|i| ("ip".to_owned(), format!("10.0.0.{i}"))),
            (1..9u8).prop_map(|m| ("start_time".to_owned(), format!("2022-0{m}-01T00:00:00"))),
            select(&["true", "True", "1", "yes", "false", "0", "N"][..])
                .prop_map(|v| ("all_tenants".to_owned(), v.to_owned())),
        ],
        0..4,
    );
    filters.prop_map(|mut pairs| {
        // all_tenants may be given once.
        let mut seen = false;
        pairs.retain(|(k, _)| k != "all_tenants" || !std::mem::replace(&mut seen, true));
        pairs
    })
}

async fn tenants_never_see_each_other(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let records = dataset();
    app.store(&records);
    let tokens: Vec<(String, String, bool)> = TENANTS
        .iter()
        .flat_map(|t| {
            [
                (t.to_string(), app.token(t, &[]), false),
                (t.to_string(), app.token(t, &["admin"]), true),
            ]
        })
        .collect();
    let address = app.address.clone();
    let label = app.db_label.clone();
    let outcome = actix_web::web::block(move || {
        let client = reqwest::blocking::Client::new();
        let mut runner = TestRunner::new(Config {
            cases: 48,
            ..Config::default()
        });
        runner.run(
            &(select(tokens), select(TENANTS), query()),
            |((caller, token, admin), path_tenant, pairs)| {
                let all_tenants = pairs
                    .iter()
                    .find(|(k, _)| k == "all_tenants")
                    .is_some_and(|(_, v)| csbs_domain::parse_bool("all_tenants", v).unwrap());
                let encoded = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish();
                let get = |path: String| {
                    client
                        .get(format!("{address}{path}"))
                        .header("X-Auth-Token", &token)
                        .send()
                        .unwrap()
                };
                let count = get(format!(
                    "/v1/{path_tenant}/checkpoint_items/count?{encoded}"
                ));
                let list = get(format!("/v1/{path_tenant}/checkpoint_items?{encoded}"));
                let allowed = admin || (caller == path_tenant && !all_tenants);
                if !allowed {
                    prop_assert_eq!(
                        count.status().as_u16(),
                        403,
                        "{} {} {:?}",
                        label,
                        caller,
                        pairs
                    );
                    prop_assert_eq!(list.status().as_u16(), 403);
                    return Ok(());
                }
                prop_assert_eq!(count.status().as_u16(), 200, "{} {:?}", label, pairs);
                let scope = if all_tenants {
                    TenantScope::AllTenants
                } else {
                    TenantScope::Project(ProjectId::parse("p", path_tenant).unwrap())
                };
                let filter = BackupFilter {
                    scope,
                    criteria: CountQuery::from_pairs(&pairs).unwrap().criteria,
                };
                let expected: Vec<&BackupRecord> =
                    records.iter().filter(|r| filter.matches(r)).collect();
                let counted = count.json::<Value>().unwrap()["count"].as_u64().unwrap();
                prop_assert_eq!(counted as usize, expected.len(), "{} {:?}", label, pairs);
                let listed: Value = list.json().unwrap();
                let items = listed["checkpoint_items"].as_array().unwrap();
                prop_assert_eq!(items.len(), expected.len());
                for item in items {
                    let id = item["id"].as_str().unwrap();
                    let owner = records.iter().find(|r| r.id.as_str() == id).unwrap();
                    prop_assert!(
                        all_tenants || owner.project_id.as_str() == path_tenant,
                        "{} {} saw {}'s item {}",
                        label,
                        path_tenant,
                        owner.project_id,
                        id
                    );
                }
                // Another tenant's item is unknown here, even by its exact id.
                if !admin {
                    if let Some(foreign) = records.iter().find(|r| r.project_id.as_str() != caller)
                    {
                        let shown = get(format!("/v1/{caller}/checkpoint_items/{}", foreign.id));
                        prop_assert_eq!(shown.status().as_u16(), 404);
                    }
                }
                Ok(())
            },
        )
    })
    .await
    .unwrap();
    outcome.unwrap();
}

backend_tests!(
    async:
    tenants_never_see_each_other,
);
