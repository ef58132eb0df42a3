//! Property: for random data and random filters, on both backends, the count equals the
//! number of items met by paging through the list with a random page size and sort, and both
//! equal what the filter means (the reference model in `csbs_domain`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use csbs_domain::FromQueryPairs;
use csbs_domain::{
    BackupFilter, BackupRecord, BackupStatus, CountQuery, ProjectId, SortSpec, TenantScope,
};
use csbs_test_support::{backend_tests, item_record, list_all_ids, reference_list, TestDatabase};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

const NAMES: &[&str] = &["web", "Web-1", "db_1", "db%1", "dbx1", "a_b", "", "webweb"];
const NAME_PARTS: &[&str] = &["web", "W", "_", "%", "1", "b", "x1", "db_"];
const RESOURCE_NAMES: &[Option<&str>] = &[None, Some("ecs-1"), Some("ECS-2"), Some("x%y")];
const RESOURCE_NAME_PARTS: &[&str] = &["ecs", "ECS", "%", "-", "y"];
const RESOURCE_IDS: &[&str] = &["r1", "r2", "r3"];
const TYPES: &[&str] = &["OS::Nova::Server", "OS::Cinder::Volume"];
const AZS: &[Option<&str>] = &[None, Some("az1"), Some("az2")];
const IMAGE_TYPES: &[Option<&str>] = &[None, Some("backup"), Some("replication")];
const POLICIES: &[Option<&str>] = &[None, Some("pol1"), Some("pol2")];
const IPS: &[Option<&str>] = &[
    None,
    Some("10.0.0.1"),
    Some("10.0.0.2"),
    Some("2001:db8::1"),
];
const SORTS: &[&str] = &[
    "created_at",
    "created_at:asc",
    "name:asc",
    "name,created_at:asc",
    "status:asc,updated_at",
    "protected_at",
    "protected_at:asc,name",
    "id:asc",
    "updated_at:asc",
];

fn item() -> impl Strategy<Value = Value> {
    (
        (0..3usize, select(NAMES), select(&BackupStatus::ALL[..]), select(RESOURCE_IDS), select(TYPES)),
        (select(RESOURCE_NAMES), select(AZS), select(IMAGE_TYPES), select(POLICIES)),
        (select(IPS), select(IPS), 0..6u32, proptest::option::of(0..4u32), 0..3u32),
    )
        .prop_map(|((tenant, name, status, resource_id, kind), (resource_name, az, image, policy), (private_ip, eip, day, protected, updated))| {
            json!({
                "project_id": format!("p{tenant}"),
                "name": name,
                "status": status.as_str(),
                "resource_id": resource_id,
                "resource_type": kind,
                "policy_id": policy,
                "created_at": format!("2021-01-0{}T00:00:00", day + 1),
                "updated_at": format!("2022-01-0{}T00:00:00", updated + 1),
                "protected_at": protected.map(|d| format!("2023-01-0{}T00:00:00", d + 1)),
                "extend_info": {"resource_name": resource_name, "resource_az": az, "image_type": image},
                "backup_data": {"private_ip": private_ip, "eip": eip},
            })
        })
}

/// A query string for the criteria: each criterion absent or with one or two values.
fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    fn some_of(
        key: &'static str,
        values: Vec<String>,
    ) -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(select(values), 0..=2).prop_map(move |vs| {
            vs.into_iter()
                .map(|v| (key.to_owned(), v))
                .collect::<Vec<_>>()
        })
    }
    let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let flat = |values: &[Option<&str>]| {
        values
            .iter()
            .flatten()
            .map(|v| (*v).to_owned())
            .collect::<Vec<_>>()
    };
    (
        (
            some_of(
                "status",
                BackupStatus::ALL
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
            ),
            some_of("name", owned(NAME_PARTS)),
            some_of("resource_name", owned(RESOURCE_NAME_PARTS)),
            some_of("resource_id", owned(RESOURCE_IDS)),
            some_of("resource_type", owned(TYPES)),
        ),
        (
            some_of("az", flat(AZS)),
            some_of("image_type", flat(IMAGE_TYPES)),
            some_of("policy_id", flat(POLICIES)),
            some_of("ip", flat(IPS)),
            proptest::option::of((0..7u32, 0..7u32)),
        ),
    )
        .prop_map(|((a, b, c, d, e), (f, g, h, i, range))| {
            let mut pairs: Vec<(String, String)> =
                [a, b, c, d, e, f, g, h, i].into_iter().flatten().collect();
            if let Some((x, y)) = range {
                let (from, to) = (x.min(y), x.max(y));
                pairs.push((
                    "start_time".into(),
                    format!("2021-01-0{}T00:00:00", from.max(1)),
                ));
                pairs.push((
                    "end_time".into(),
                    format!("2021-01-0{}T00:00:00", to.max(1)),
                ));
            }
            pairs
        })
}

fn count_equals_paging_equals_meaning(db: TestDatabase) {
    let repositories = [(format!("{db:?}"), db.repository())];
    let stored: RefCell<Vec<BackupRecord>> = RefCell::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(item(), 0..25),
        query(),
        prop_oneof![Just(None), (0..3usize).prop_map(Some)],
        select(SORTS),
        1..7u32,
    );
    runner
        .run(&strategy, |(items, pairs, tenant, sort, limit)| {
            let records: Vec<BackupRecord> = items
                .into_iter()
                .map(|value| {
                    let project = value["project_id"].as_str().unwrap().to_owned();
                    item_record(&project, value)
                })
                .collect();
            let mut all = stored.borrow_mut();
            all.extend(records.iter().cloned());
            let criteria = CountQuery::from_pairs(&pairs).unwrap().criteria;
            let scope = match tenant {
                Some(t) => TenantScope::Project(ProjectId::parse("p", &format!("p{t}")).unwrap()),
                None => TenantScope::AllTenants,
            };
            let filter = BackupFilter { scope, criteria };
            let sort = SortSpec::parse("sort", sort).unwrap();
            let expected = reference_list(&all, &filter, &sort);
            for (label, repository) in &repositories {
                repository.upsert(&records).unwrap();
                let count = repository.count(&filter).unwrap();
                let listed = list_all_ids(repository, &filter, &sort, limit);
                prop_assert_eq!(
                    count as usize,
                    listed.len(),
                    "{} count vs list for {:?}",
                    label,
                    pairs
                );
                prop_assert_eq!(
                    &listed,
                    &expected,
                    "{} list vs meaning for {:?}",
                    label,
                    pairs
                );
            }
            Ok(())
        })
        .unwrap();
}

backend_tests!(count_equals_paging_equals_meaning);
