//! Query shapes are prepared once per connection, and a connection cannot accumulate prepared
//! statements without bound. Both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use csbs_domain::{BackupFilter, CountQuery, ListQuery, ProjectId, TenantScope};
use csbs_storage::testing::{cached_statements, item_record, test_databases, TestDatabase};
use csbs_storage::{PoolSettings, Repository, MAX_CACHED_STATEMENTS};
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

#[test]
fn a_query_shape_is_prepared_once_per_connection() {
    for db in test_databases() {
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
            prepared >= 13,
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
}

#[test]
fn a_connection_with_too_many_prepared_statements_is_replaced() {
    for db in test_databases() {
        let repo = single_connection(&db);
        repo.upsert(&[item_record("tenant-a", json!({"resource_id": "server-1"}))])
            .unwrap();
        let mut replaced = false;
        let mut previous = cached_statements(&repo);
        // Each number of resource ids is another statement (`IN (?, ?, …)`).
        for n in 1..=MAX_CACHED_STATEMENTS + 10 {
            let ids: Vec<String> = (0..n).map(|i| format!("server-{i}")).collect();
            let pairs: Vec<(&str, &str)> =
                ids.iter().map(|id| ("resource_id", id.as_str())).collect();
            assert_eq!(
                repo.count(&scoped("tenant-a", &pairs)).unwrap(),
                u64::from(n >= 2),
                "{db:?}"
            );
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
}
