//! Query shapes are prepared once per connection, and a connection cannot accumulate prepared
//! statements without bound. Both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use csbs_domain::FromQueryPairs;
use csbs_domain::{
    BackupFilter, CountQuery, ListQuery, ProjectId, TenantScope, MAX_VALUES_PER_FILTER,
};
use csbs_storage::{Backend, PoolSettings, Repository, MAX_CACHED_STATEMENTS};
use csbs_test_support::backend_tests;
use csbs_test_support::{cached_statements, item_record, TestDatabase};
use serde_json::json;

/// A repository on `db` whose pool holds one connection, so that every call uses it.
fn single_connection(db: &TestDatabase) -> Repository {
    db.repository_with(&PoolSettings {
        max_size: 1,
        min_idle: 0,
        ..PoolSettings::default()
    })
}

fn scoped(project_id: &str, query: &[(&str, &str)]) -> BackupFilter {
    BackupFilter {
        scope: TenantScope::Project(ProjectId::parse("project_id", project_id).unwrap()),
        criteria: CountQuery::from_pairs(query).unwrap().criteria,
    }
}

/// The service's common requests for one tenant, with that tenant's values.
fn common_requests(repo: &Repository, tenant: &str, resource_id: &str, marker: &str) {
    for query in [
        vec![],
        vec![("status", "available")],
        vec![("status", "available"), ("status", "error")],
        vec![("resource_id", resource_id)],
        vec![
            ("start_time", "2020-01-01T06:00:00"),
            ("end_time", "2020-03-01T06:00:00"),
        ],
        vec![("name", "web")],
    ] {
        let filter = scoped(tenant, &query);
        repo.count(&filter).unwrap();
        let list = ListQuery::from_pairs(&query).unwrap();
        repo.list(&filter, &list.sort, &list.page).unwrap();
    }
    let list = ListQuery::from_pairs(&[("limit", "2"), ("marker", marker)]).unwrap();
    repo.list(&scoped(tenant, &[]), &list.sort, &list.page)
        .unwrap();
}

fn a_query_shape_is_prepared_once_per_connection(db: TestDatabase) {
    let repo = single_connection(&db);
    let mut markers = Vec::new();
    for tenant in ["tenant-a", "tenant-b", "tenant-c"] {
        let records: Vec<_> = (0..5)
            .map(|i| {
                item_record(
                    tenant,
                    json!({"name": format!("web-{i}"), "resource_id": format!("{tenant}-server-{i}"),
                           "created_at": format!("2020-0{}-01T00:00:00", i + 1)}),
                )
            })
            .collect();
        markers.push(records[2].id.as_str().to_owned());
        repo.upsert(&records).unwrap();
    }

    common_requests(&repo, "tenant-a", "tenant-a-server-1", &markers[0]);
    let prepared = cached_statements(&repo);
    assert!(
        prepared >= 10,
        "{db:?}: every request shape should have been prepared, {prepared} were"
    );
    common_requests(&repo, "tenant-b", "tenant-b-server-3", &markers[1]);
    common_requests(&repo, "tenant-c", "tenant-c-server-0", &markers[2]);
    assert_eq!(
        cached_statements(&repo),
        prepared,
        "{db:?}: the same shapes with other values must reuse their statements"
    );
}

/// However many values a filter is given, they take two statements on PostgreSQL (one value,
/// or an array parameter of any length) and at most eight on SQLite (lists padded to powers of
/// two, up to 128).
fn the_number_of_values_does_not_multiply_statements(db: TestDatabase) {
    let repo = single_connection(&db);
    repo.upsert(&[item_record(
        "tenant-a",
        json!({"resource_id": "server-1", "name": "web-1"}),
    )])
    .unwrap();
    let before = cached_statements(&repo);
    for n in 1..=MAX_VALUES_PER_FILTER {
        let ids: Vec<String> = (0..n).map(|i| format!("server-{i}")).collect();
        let names: Vec<String> = (1..n).map(|i| format!("nope-{i}")).collect();
        let mut pairs: Vec<(&str, &str)> =
            ids.iter().map(|id| ("resource_id", id.as_str())).collect();
        assert_eq!(
            repo.count(&scoped("tenant-a", &pairs)).unwrap(),
            u64::from(n >= 2),
            "{db:?}: {n} resource ids"
        );
        pairs.extend(names.iter().map(|name| ("name", name.as_str())));
        pairs.push(("name", "web"));
        assert_eq!(
            repo.count(&scoped("tenant-a", &pairs)).unwrap(),
            u64::from(n >= 2),
            "{db:?}: {n} resource ids and names"
        );
    }
    let added = cached_statements(&repo) - before;
    let bound = match db.backend() {
        // Resource ids alone, and with names: one value each, or arrays.
        Backend::Postgres => 2 + 2,
        // 1, 2, 4, …, 128 resource ids alone, and with 2, 4, …, 128 names.
        Backend::Sqlite => 8 + 8,
    };
    assert!(
        added <= bound,
        "{db:?}: {added} statements for one to {MAX_VALUES_PER_FILTER} values"
    );
}

/// Every distinct sort order is a statement of its own; a connection that has prepared too
/// many is closed on its return to the pool and replaced.
fn a_connection_with_too_many_prepared_statements_is_replaced(db: TestDatabase) {
    let repo = single_connection(&db);
    repo.upsert(&[item_record("tenant-a", json!({"resource_id": "server-1"}))])
        .unwrap();
    // (`id` ends a sort: keys after it would be dropped, and the orders would repeat.)
    let keys = ["created_at", "updated_at", "name", "status", "protected_at"];
    let mut sorts = Vec::new();
    for a in keys {
        for b in keys.iter().filter(|b| **b != a) {
            for c in keys.iter().filter(|c| **c != a && *c != b) {
                for directions in 0..8 {
                    let direction = |bit: i32| if directions & bit == 0 { "asc" } else { "desc" };
                    sorts.push(format!(
                        "{a}:{},{b}:{},{c}:{}",
                        direction(1),
                        direction(2),
                        direction(4)
                    ));
                }
            }
        }
    }
    assert!(sorts.len() > MAX_CACHED_STATEMENTS + 10);
    let mut replaced = false;
    let mut previous = cached_statements(&repo);
    for sort in sorts.iter().take(MAX_CACHED_STATEMENTS + 10) {
        let list = ListQuery::from_pairs(&[("sort", sort.as_str())]).unwrap();
        let page = repo
            .list(&scoped("tenant-a", &[]), &list.sort, &list.page)
            .unwrap();
        assert_eq!(page.documents.len(), 1, "{db:?}");
        let now = cached_statements(&repo);
        assert!(
            now <= MAX_CACHED_STATEMENTS + 1,
            "{db:?}: {now} statements cached on one connection"
        );
        replaced |= now < previous;
        previous = now;
    }
    assert!(
        replaced,
        "{db:?}: the connection should have been replaced after {MAX_CACHED_STATEMENTS} statements"
    );
}

/// On PostgreSQL a statement with a substring is planned for its values each time, never kept:
/// a kept statement goes over to a generic plan after five runs, and the generic plan cannot
/// see the pattern (it walked a large tenant's time range instead of the trigram index: 525 ms
/// against 38). Statements without one are kept as before.
fn substring_statements_are_planned_for_their_values(db: TestDatabase) {
    let repo = single_connection(&db);
    repo.upsert(&[item_record("tenant-a", json!({"name": "web-1"}))])
        .unwrap();
    let substrings: Vec<Vec<(&str, &str)>> = vec![
        vec![("name", "web")],
        vec![("name", "web"), ("start_time", "2020-01-01T06:00:00")],
        vec![("resource_name", "ecs"), ("name", "a"), ("name", "b")],
    ];
    let before = cached_statements(&repo);
    for query in &substrings {
        for _ in 0..7 {
            repo.count(&scoped("tenant-a", query)).unwrap();
            let list = ListQuery::from_pairs(query).unwrap();
            repo.list(&scoped("tenant-a", query), &list.sort, &list.page)
                .unwrap();
        }
    }
    let kept = cached_statements(&repo) - before;
    match db.backend() {
        // None is kept (nor the look at the tenant's size before each search).
        Backend::Postgres => assert_eq!(kept, 0, "{db:?}"),
        // SQLite has no trigram index and plans every statement alike: they are kept.
        Backend::Sqlite => assert!(kept >= substrings.len(), "{db:?}: {kept}"),
    }
    let before = cached_statements(&repo);
    repo.count(&scoped("tenant-a", &[("resource_id", "r")]))
        .unwrap();
    assert_eq!(cached_statements(&repo) - before, 1, "{db:?}");
}

backend_tests!(
    substring_statements_are_planned_for_their_values,
    a_query_shape_is_prepared_once_per_connection,
    the_number_of_values_does_not_multiply_statements,
    a_connection_with_too_many_prepared_statements_is_replaced,
);
