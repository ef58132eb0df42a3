//! Every count and list shape of one tenant is answered from an index, never by scanning the
//! table, and reads that tenant's rows alone (so a database sharded by tenant sends it to one
//! shard): checked on each backend's own query plan of the repository's real queries.
//!
//! On PostgreSQL the plans are taken with `enable_seqscan = off`: the planner then scans the
//! table only when no index can serve the query, so a `Seq Scan` means a missing index.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use csbs_domain::FromQueryPairs;
use csbs_domain::{
    BackupFilter, CountQuery, ItemId, ListQuery, PageRequest, ProjectId, SortSpec, TenantScope,
};
use csbs_storage::{Backend, DatabaseUrl, PoolSettings, Repository};
use csbs_test_support::{backend_tests, execute_sql, item_record, list_all_ids, TestDatabase};
use serde_json::json;

fn tenant_filter(query: &[(&str, &str)]) -> BackupFilter {
    BackupFilter {
        scope: TenantScope::Project(ProjectId::parse("p", "tenant-a").unwrap()),
        criteria: CountQuery::from_pairs(query).unwrap().criteria,
    }
}

/// The count plans of `query` for tenant-a and across tenants.
fn count_plans_in_both_scopes(
    repository: &Repository,
    query: &[(&str, &str)],
) -> Vec<(TenantScope, Vec<String>)> {
    [
        TenantScope::Project(ProjectId::parse("p", "tenant-a").unwrap()),
        TenantScope::AllTenants,
    ]
    .into_iter()
    .map(|scope| {
        let filter = BackupFilter {
            scope: scope.clone(),
            ..tenant_filter(query)
        };
        (scope, repository.explain_count(&filter).unwrap())
    })
    .collect()
}

/// Whether the plan reads the whole table: a sequential scan, or (PostgreSQL, where sequential
/// scans are discouraged here) an index walked from end to end without an index condition.
fn scans_table(backend: Backend, plan: &[String]) -> bool {
    match backend {
        // The status counters' totals (a few rows per tenant) may be read whole.
        Backend::Sqlite => plan.iter().any(|line| {
            line.starts_with("SCAN backup_items")
                || line.starts_with("SCAN item_dimension_counts")
                || line.starts_with("SCAN item_counts_")
        }),
        Backend::Postgres => plan.iter().enumerate().any(|(i, line)| {
            if line.contains("Seq Scan") {
                return true;
            }
            // Whether an initial load is pending is read from its bookkeeping table, which
            // holds no row outside one.
            if !line.contains("Index Scan") && !line.contains("Index Only Scan")
                || line.contains("deferred_for_initial_load")
            {
                return false;
            }
            let node_details = plan[i + 1..].iter().take_while(|l| !l.contains("->"));
            !node_details.into_iter().any(|l| l.contains("Index Cond"))
        }),
    }
}

/// Whether the plan reads items, and every read of them is answered by an index without
/// visiting the table's rows (SQLite; see the caller for PostgreSQL).
fn reads_items_from_index_only(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Sqlite => {
            let reads: Vec<&String> = plan
                .iter()
                .filter(|line| line.contains(" backup_items "))
                .collect();
            !reads.is_empty() && reads.iter().all(|line| line.contains("COVERING INDEX"))
        }
        Backend::Postgres => plan.iter().any(|line| line.contains(" on backup_items")),
    }
}

/// Whether every read of a table in the plan is limited to one tenant by a `project_id`
/// condition (the rule that lets a distributed database send the query to one shard). The
/// index scans under a bitmap scan are left out: the rows they find are the bitmap scan's,
/// which carries the conditions of them all.
fn touches_one_tenant(backend: Backend, plan: &[String]) -> bool {
    reads_by_tenant(
        backend,
        plan,
        &["backup_items", "item_counts", "item_dimension_counts"],
    )
}

/// Whether every read of `tables` in the plan has a `project_id` condition.
fn reads_by_tenant(backend: Backend, plan: &[String], tables: &[&str]) -> bool {
    match backend {
        Backend::Sqlite => plan
            .iter()
            .filter(|line| tables.iter().any(|t| line.contains(&format!(" {t}"))))
            .all(|line| line.contains("project_id=")),
        Backend::Postgres => plan.iter().enumerate().all(|(i, line)| {
            let reads_table = line.contains("Scan")
                && !line.contains("Bitmap Index Scan")
                && line
                    .split(" on ")
                    .nth(1)
                    .is_some_and(|rest| tables.iter().any(|t| rest.starts_with(t)));
            !reads_table
                || plan[i + 1..]
                    .iter()
                    .take_while(|l| !l.contains("->"))
                    .any(|l| l.contains("project_id = "))
        }),
    }
}

/// Whether the plan's index scan over the items is bounded by the marker's sort keys.
fn starts_at_marker(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Sqlite => plan.iter().any(|line| {
            line.starts_with("SEARCH backup_items USING")
                && (line.contains("created_at_us<?") || line.contains("created_at_us>?"))
        }),
        Backend::Postgres => plan
            .iter()
            .any(|line| line.contains("Index Cond") && line.contains("ROW(created_at_us, id)")),
    }
}

fn tenant_queries_use_indexes(db: TestDatabase) {
    let seeded = db.repository();
    let records: Vec<_> = (0..300)
        .map(|i| {
            item_record(
                &format!("tenant-{}", ["a", "b", "c"][i % 3]),
                json!({
                    "name": format!("n{i}"),
                    "policy_id": format!("pol{}", i % 4),
                    "created_at": format!("2020-01-{:02}T00:00:00", 1 + i % 28),
                }),
            )
        })
        .collect();
    seeded.upsert(&records).unwrap();
    let checkpoint = records[0].checkpoint_id.to_string();
    let marker = records[3].id.clone();

    let repository = match db.backend() {
        Backend::Sqlite => seeded,
        Backend::Postgres => {
            let url = format!("{}%20-cenable_seqscan%3Doff", db.url());
            let url = DatabaseUrl::parse(&url).unwrap();
            Repository::open(
                &url,
                &PoolSettings {
                    min_idle: 0,
                    ..PoolSettings::default()
                },
            )
            .unwrap()
        }
    };

    let counts: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("status", "available")],
        vec![("status", "available"), ("status", "error")],
        vec![("status", "deleted")],
        vec![
            ("start_time", "2020-01-05T00:00:00"),
            ("end_time", "2020-01-09T00:00:00"),
        ],
        vec![
            ("status", "available"),
            ("start_time", "2020-01-05T00:00:00"),
        ],
        vec![("resource_id", "f8ddc472-cf00-4384-851e-5f2a68c33762")],
        vec![("checkpoint_id", checkpoint.as_str())],
        vec![("policy_id", "pol1")],
        vec![("ip", "10.1.2.3")],
        vec![("az", "eu-de-01")],
        vec![("name", "n1")],
        vec![
            ("name", "n1"),
            ("status", "error"),
            ("image_type", "backup"),
        ],
    ];
    for query in &counts {
        let plan = repository.explain_count(&tenant_filter(query)).unwrap();
        assert!(
            !scans_table(db.backend(), &plan) && touches_one_tenant(db.backend(), &plan),
            "{db:?} count {query:?}:\n{}",
            plan.join("\n")
        );
    }

    // A time range is whole days and hours from the counters; the partial hours at its
    // ends (across tenants, the partial days) are counted from the items: from an index,
    // and on SQLite from the index alone. (PostgreSQL's choice between its indexes is a
    // matter of cost: at a few hundred rows any of them is as cheap, so its index-only plan
    // on real data is recorded by the benchmark's `--explain` instead.)
    let ranges = [
        vec![
            ("start_time", "2020-01-05T06:30:00"),
            ("end_time", "2020-01-09T17:45:00"),
        ],
        vec![
            ("start_time", "2020-01-05T06:30:00"),
            ("end_time", "2020-01-05T17:45:00"),
        ],
        vec![("status", "error"), ("start_time", "2020-01-05T06:30:00")],
    ];
    for query in &ranges {
        for (scope, plan) in count_plans_in_both_scopes(&repository, query) {
            let one_tenant =
                scope == TenantScope::AllTenants || touches_one_tenant(db.backend(), &plan);
            assert!(
                !scans_table(db.backend(), &plan)
                    && reads_items_from_index_only(db.backend(), &plan)
                    && one_tenant,
                "{db:?} {scope:?} count {query:?}:\n{}",
                plan.join("\n")
            );
        }
    }

    type Page<'a> = (Vec<(&'a str, &'a str)>, Option<ItemId>);
    let pages: Vec<Page> = vec![
        (vec![("limit", "100")], None),
        (vec![("limit", "100")], Some(marker.clone())),
        (
            vec![("limit", "10"), ("sort", "created_at:asc")],
            Some(marker.clone()),
        ),
        (
            vec![("limit", "10"), ("status", "available")],
            Some(marker.clone()),
        ),
        (vec![("limit", "10"), ("sort", "name:asc")], None),
        (vec![("limit", "10"), ("offset", "50")], None),
    ];
    for (query, marker) in &pages {
        let list = ListQuery::from_pairs(query).unwrap();
        let filter = BackupFilter {
            scope: TenantScope::Project(ProjectId::parse("p", "tenant-a").unwrap()),
            criteria: list.criteria,
        };
        let page = PageRequest {
            marker: marker.clone(),
            ..list.page
        };
        let plan = repository.explain_list(&filter, &list.sort, &page).unwrap();
        assert!(
            !scans_table(db.backend(), &plan) && touches_one_tenant(db.backend(), &plan),
            "{db:?} list {query:?}:\n{}",
            plan.join("\n")
        );
        // The marker's keys come from a subquery of the same statement; the index scan
        // must still start at the marker, or a deep page would read every row before it.
        assert!(
            marker.is_none() || starts_at_marker(db.backend(), &plan),
            "{db:?} list {query:?} after a marker:\n{}",
            plan.join("\n")
        );
    }

    let everyone = BackupFilter {
        scope: TenantScope::AllTenants,
        criteria: CountQuery::from_pairs(&[("status", "available")])
            .unwrap()
            .criteria,
    };
    let plan = repository.explain_count(&everyone).unwrap();
    assert!(
        !scans_table(db.backend(), &plan),
        "{db:?} all tenants by status:\n{}",
        plan.join("\n")
    );
    // The detector of one tenant's reads: a count across tenants reads them all.
    assert!(
        !touches_one_tenant(db.backend(), &plan),
        "{db:?} all tenants by status is seen to read every tenant:\n{}",
        plan.join("\n")
    );
    // An administrator pages across tenants by a marker that is an id without its tenant:
    // the marker's keys are found by id alone, from an index of its own.
    let plan = repository
        .explain_list(
            &everyone,
            &SortSpec::default(),
            &PageRequest {
                marker: Some(marker.clone()),
                ..PageRequest::default()
            },
        )
        .unwrap();
    assert!(
        !scans_table(db.backend(), &plan) && starts_at_marker(db.backend(), &plan),
        "{db:?} all tenants after a marker:\n{}",
        plan.join("\n")
    );

    if db.backend() == Backend::Postgres {
        // Substrings of three characters or more are served by the trigram index.
        let by_name = BackupFilter {
            scope: TenantScope::AllTenants,
            criteria: CountQuery::from_pairs(&[("name", "n12"), ("resource_name", "web")])
                .unwrap()
                .criteria,
        };
        let plan = repository.explain_count(&by_name).unwrap();
        assert!(
            !scans_table(db.backend(), &plan),
            "trigram index:\n{}",
            plan.join("\n")
        );
    }

    // The dimension counters, for one tenant and across tenants, with and without a time
    // range: never a scan of the items or of the counters.
    let by_dimensions = [
        vec![("resource_type", "OS::Nova::Server")],
        vec![("az", "eu-de-01"), ("status", "available")],
        vec![
            ("image_type", "backup"),
            ("policy_id", "pol1"),
            ("start_time", "2020-01-05T06:30:00"),
            ("end_time", "2020-03-09T17:45:00"),
        ],
    ];
    for query in &by_dimensions {
        for (scope, plan) in count_plans_in_both_scopes(&repository, query) {
            let one_tenant =
                scope == TenantScope::AllTenants || touches_one_tenant(db.backend(), &plan);
            assert!(
                !scans_table(db.backend(), &plan) && one_tenant,
                "{db:?} {scope:?} count {query:?}:\n{}",
                plan.join("\n")
            );
            // Across tenants the dimension counters' key is probed tenant by tenant: a walk
            // of the whole key with conditions on its later columns would read every
            // tenant's counters.
            let reads_counters = plan.iter().any(|l| l.contains("item_dimension_counts"));
            assert!(
                reads_counters && reads_by_tenant(db.backend(), &plan, &["item_dimension_counts"]),
                "{db:?} {scope:?} count {query:?}:\n{}",
                plan.join("\n")
            );
        }
    }

    // The detector itself: no index serves a resource type across tenants in a list, nor, on
    // SQLite (which has no trigram index), in a count with a substring.
    let unindexed = BackupFilter {
        scope: TenantScope::AllTenants,
        criteria: CountQuery::from_pairs(&[("resource_type", "OS::Nova::Server"), ("name", "xy")])
            .unwrap()
            .criteria,
    };
    let plan = repository.explain_count(&unindexed).unwrap();
    assert!(
        db.backend() == Backend::Postgres || scans_table(db.backend(), &plan),
        "{db:?} a scan is recognised:\n{}",
        plan.join("\n")
    );
    // And a scan of the counters is recognised as one too.
    assert!(scans_table(
        Backend::Sqlite,
        &["SCAN item_dimension_counts".to_owned()]
    ));
    let by_type = BackupFilter {
        scope: TenantScope::AllTenants,
        criteria: CountQuery::from_pairs(&[("resource_type", "OS::Nova::Server")])
            .unwrap()
            .criteria,
    };
    let plan = repository
        .explain_list(
            &by_type,
            &SortSpec::parse("sort", "name").unwrap(),
            &PageRequest::default(),
        )
        .unwrap();
    assert!(
        scans_table(db.backend(), &plan),
        "{db:?} a scan is recognised:\n{}",
        plan.join("\n")
    );
}

/// A substring search of a small tenant tests the tenant's own rows; of a large one (as its
/// counters say) it may use the trigram indexes; across tenants too. Whichever way, count and
/// list answer the same.
fn substring_search_follows_the_tenants_size(db: TestDatabase) {
    let repository = db.repository();
    let records: Vec<_> = (0..60)
        .map(|i| {
            item_record(
                &format!("tenant-{}", ["a", "b"][i % 2]),
                json!({
                    "name": format!("{}-web-{i}", ["daily", "before-upgrade"][i % 3 / 2]),
                    "extend_info": {"resource_name": format!("srv-{}", i % 5)},
                }),
            )
        })
        .collect();
    repository.upsert(&records).unwrap();
    let queries: Vec<Vec<(&str, &str)>> = vec![
        vec![("name", "upgrade-web")],
        vec![("name", "web-1"), ("name", "web-2")],
        vec![("resource_name", "srv-3"), ("status", "available")],
    ];
    let answers = |repository: &Repository| -> Vec<(u64, usize)> {
        queries
            .iter()
            .map(|query| {
                let filter = tenant_filter(query);
                let count = repository.count(&filter).unwrap();
                let listed = list_all_ids(repository, &filter, &SortSpec::default(), 1000).len();
                assert_eq!(count, listed as u64, "{query:?}");
                (count, listed)
            })
            .collect()
    };
    let expected: Vec<(u64, usize)> = queries
        .iter()
        .map(|query| {
            let filter = tenant_filter(query);
            let n = repository.count_rows(&filter).unwrap();
            (n, n as usize)
        })
        .collect();
    assert!(expected.iter().all(|(n, _)| *n > 0), "{expected:?}");
    assert_eq!(answers(&repository), expected);

    let each_row = |repository: &Repository, query: &[(&str, &str)]| {
        let plan = repository.explain_count(&tenant_filter(query)).unwrap();
        let list = repository
            .explain_list(
                &tenant_filter(query),
                &SortSpec::default(),
                &PageRequest::default(),
            )
            .unwrap();
        let tested_by_row = |plan: &[String]| plan.iter().any(|line| line.contains("|| ''"));
        (tested_by_row(&plan), tested_by_row(&list))
    };
    if db.backend() == Backend::Sqlite {
        // No trigram index to avoid: the LIKE is written as it is.
        assert_eq!(each_row(&repository, &queries[0]), (false, false));
        return;
    }
    for query in &queries {
        assert_eq!(each_row(&repository, query), (true, true), "{query:?}");
    }
    // The counters now say tenant-a is large.
    execute_sql(
        &repository,
        "INSERT INTO item_counts (project_id, status, n) VALUES ('tenant-a', 'deleted', \
         1000000) ON CONFLICT (project_id, status) DO UPDATE SET n = item_counts.n + 1000000",
    );
    for query in &queries {
        assert_eq!(each_row(&repository, query), (false, false), "{query:?}");
    }
    assert_eq!(answers(&repository), expected);
}

backend_tests!(
    tenant_queries_use_indexes,
    substring_search_follows_the_tenants_size,
);
