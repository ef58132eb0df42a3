//! The repository against real databases: every test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use csbs_domain::FromQueryPairs;
use csbs_domain::{
    BackupFilter, BackupRecord, BackupStatus, CountQuery, ItemId, ListQuery, PageRequest,
    ProjectId, SortSpec, TenantScope,
};
use csbs_storage::{
    Backend, ConnectionSettings, DatabaseUrl, PoolSettings, Repository, StorageError,
};
use csbs_test_support::{
    backend_tests, execute_sql, item_record, list_all_ids, postgres_database, reference_list,
    try_execute_sql, TestDatabase,
};
use serde_json::json;

fn project(id: &str) -> ProjectId {
    ProjectId::parse("project_id", id).unwrap()
}

fn scoped(project_id: &str, query: &[(&str, &str)]) -> BackupFilter {
    BackupFilter {
        scope: TenantScope::Project(project(project_id)),
        criteria: CountQuery::from_pairs(query).unwrap().criteria,
    }
}

fn list_all(repo: &Repository, filter: &BackupFilter, sort: &SortSpec, limit: u32) -> Vec<String> {
    list_all_ids(repo, filter, sort, limit)
}

fn count(repo: &Repository, project_id: &str, query: &[(&str, &str)]) -> u64 {
    repo.count(&scoped(project_id, query)).unwrap()
}

fn every_filter_narrows_count_and_list_alike(db: TestDatabase) {
    let repo = db.repository();
    let records = vec![
        item_record(
            "tenant-a",
            json!({"name": "web-Daily", "status": "available",
            "created_at": "2020-01-01T00:00:00", "policy_id": "policy-1",
            "extend_info": {"resource_name": "ecs-web-01", "resource_az": "eu-de-01", "image_type": "backup"},
            "backup_data": {"private_ip": "10.0.0.1", "eip": "2001:DB8::1"}}),
        ),
        item_record(
            "tenant-a",
            json!({"name": "db_50%", "status": "error",
            "created_at": "2020-02-01T00:00:00", "resource_id": "server-2",
            "resource_type": "OS::Cinder::Volume",
            "extend_info": {"resource_name": "ECS-DB", "resource_az": "eu-de-02", "image_type": "replication"},
            "backup_data": {"private_ip": "10.0.0.2", "eip": ""}}),
        ),
        item_record(
            "tenant-a",
            json!({"name": "web-weekly", "status": "deleted",
            "created_at": "2020-03-01T00:00:00"}),
        ),
        item_record(
            "tenant-a",
            json!({"name": "dbX50Y", "status": "protecting",
            "created_at": "2020-04-01T00:00:00", "extend_info": {"resource_name": null}}),
        ),
        item_record(
            "tenant-b",
            json!({"name": "web-Daily", "status": "available"}),
        ),
    ];
    repo.upsert(&records).unwrap();
    let checkpoint = records[1].checkpoint_id.as_str().to_owned();

    let cases: Vec<(Vec<(&str, &str)>, u64)> = vec![
        (vec![], 3),
        (vec![("status", "deleted")], 1),
        (vec![("status", "deleted"), ("status", "available")], 2),
        (vec![("status", "available"), ("status", "error")], 2),
        (vec![("name", "web")], 1),
        (vec![("name", "Daily")], 1),
        (vec![("name", "daily")], 0),
        (vec![("name", "50%")], 1),
        (vec![("name", "_5")], 1),
        (vec![("name", "b_5")], 1),
        (vec![("name", "%")], 1),
        (vec![("name", "web"), ("name", "db")], 3),
        (vec![("resource_name", "ecs")], 1),
        (vec![("resource_name", "ECS")], 1),
        (vec![("resource_id", "server-2")], 1),
        (vec![("checkpoint_id", checkpoint.as_str())], 1),
        (vec![("resource_type", "OS::Cinder::Volume")], 1),
        (vec![("resource_type", "OS::Nova::Server")], 2),
        (vec![("az", "eu-de-01")], 1),
        (vec![("az", "eu-de-01"), ("az", "eu-de-02")], 3),
        (vec![("image_type", "replication")], 1),
        (vec![("policy_id", "policy-1")], 1),
        (vec![("ip", "10.0.0.2")], 1),
        (vec![("ip", "2001:db8:0::1")], 1),
        (vec![("ip", "10.0.0.3")], 0),
        (vec![("start_time", "2020-02-01T00:00:00")], 2),
        (vec![("start_time", "2020-02-01T00:00:00.000001")], 1),
        (vec![("end_time", "2020-02-01T00:00:00")], 2),
        (vec![("end_time", "2020-02-01T01:00:00+01:00")], 2),
        (
            vec![
                ("start_time", "2020-02-01T00:00:00"),
                ("end_time", "2020-02-01T00:00:00"),
            ],
            1,
        ),
        (
            vec![("name", "web"), ("status", "available"), ("az", "eu-de-01")],
            1,
        ),
        (vec![("name", "web"), ("az", "eu-de-02")], 0),
    ];
    for (query, expected) in &cases {
        let filter = scoped("tenant-a", query);
        assert_eq!(
            repo.count(&filter).unwrap(),
            *expected,
            "{db:?} count {query:?}"
        );
        for limit in [1, 2, 1000] {
            let listed = list_all(&repo, &filter, &SortSpec::default(), limit);
            assert_eq!(
                listed.len() as u64,
                *expected,
                "{db:?} list {query:?} limit {limit}"
            );
        }
    }
    let everyone = BackupFilter {
        scope: TenantScope::AllTenants,
        criteria: CountQuery::from_pairs(&[("name", "Daily")])
            .unwrap()
            .criteria,
    };
    assert_eq!(repo.count(&everyone).unwrap(), 2, "{db:?}");
}

fn documents_come_back_as_they_went_in(db: TestDatabase) {
    let repo = db.repository();
    let text = r#"{"id": "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12", "name": "backup-c2c", "description": null,
        "status": "available", "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4",
        "resource_id": "f8ddc472", "resource_type": "OS::Nova::Server",
        "created_at": "2018-08-14T07:53:15.663766", "updated_at": "2018-08-17T04:33:58.025327",
        "protected_at": null, "tags": [{"key": "k", "value": "ü"}],
        "extend_info": {"average_speed": 25.2, "space_saving_ratio": 6.50, "big": 12345678901234567890,
          "copy_from": null, "unknown_key": {"deep": [1.0, true]}},
        "project_id": "tenant-a"}"#;
    let record = BackupRecord::from_json(serde_json::from_str(text).unwrap()).unwrap();
    repo.upsert(std::slice::from_ref(&record)).unwrap();
    let stored = repo
        .find(&project("tenant-a"), &record.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.document, record.document, "{db:?}");
    for fragment in [
        "25.2",
        "6.50",
        "12345678901234567890",
        "\"copy_from\":null",
        "[1.0,true]",
        "\"description\":null",
        "ü",
    ] {
        assert!(
            stored.document.contains(fragment),
            "{db:?}: {fragment} in {}",
            stored.document
        );
    }
    assert_eq!(stored.status, BackupStatus::Available);
    assert!(
        repo.find(&project("tenant-b"), &record.id)
            .unwrap()
            .is_none(),
        "{db:?}"
    );
}

fn importing_twice_changes_nothing_and_a_change_replaces(db: TestDatabase) {
    let repo = db.repository();
    let records: Vec<_> = (0..1200)
        .map(|i| item_record("tenant-a", json!({"name": format!("b-{i}")})))
        .collect();
    assert_eq!(repo.upsert(&records).unwrap(), 1200, "{db:?}");
    assert_eq!(repo.upsert(&records).unwrap(), 0, "{db:?}");
    repo.finish_bulk_load().unwrap();
    assert_eq!(count(&repo, "tenant-a", &[]), 1200);

    let mut changed = records[7].clone();
    changed.status = BackupStatus::Error;
    changed.document = changed.document.replace("\"available\"", "\"error\"");
    assert_eq!(repo.upsert(&[changed.clone()]).unwrap(), 1, "{db:?}");
    assert_eq!(
        count(&repo, "tenant-a", &[("status", "error")]),
        1,
        "{db:?}"
    );
    let stored = repo
        .find(&project("tenant-a"), &changed.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.document, changed.document);

    let mut with_policy = changed;
    with_policy.policy_id = Some("policy-9".into());
    assert_eq!(
        repo.upsert(&[with_policy]).unwrap(),
        1,
        "{db:?}: a new policy alone is a change"
    );
    assert_eq!(
        count(&repo, "tenant-a", &[("policy_id", "policy-9")]),
        1,
        "{db:?}"
    );
}

fn the_last_of_the_same_item_in_one_batch_wins(db: TestDatabase) {
    let repo = db.repository();
    let first = item_record("tenant-a", json!({"name": "first", "status": "protecting"}));
    let mut last = first.clone();
    last.status = BackupStatus::Available;
    last.name = "last".into();
    last.document = last
        .document
        .replace("\"protecting\"", "\"available\"")
        .replace("\"first\"", "\"last\"");
    let other = item_record("tenant-a", json!({"name": "other"}));
    assert_eq!(
        repo.upsert(&[first.clone(), other, last.clone()]).unwrap(),
        2,
        "{db:?}"
    );
    let stored = repo.find(&project("tenant-a"), &last.id).unwrap().unwrap();
    assert_eq!(stored.status, BackupStatus::Available, "{db:?}");
    assert_eq!(stored.document, last.document, "{db:?}");
    assert_eq!(count(&repo, "tenant-a", &[]), 2, "{db:?}");
    assert_eq!(
        count(&repo, "tenant-a", &[("status", "protecting")]),
        0,
        "{db:?}: the counters saw one write, the last"
    );
    assert!(repo.check_counters().unwrap().is_empty(), "{db:?}");

    // The reverse order in a later batch: the earlier state comes back, as a change.
    assert_eq!(repo.upsert(&[last, first]).unwrap(), 1, "{db:?}");
    assert_eq!(
        count(&repo, "tenant-a", &[("status", "protecting")]),
        1,
        "{db:?}"
    );
}

fn the_statement_timeout_spares_bulk_imports_and_their_analyze(db: TestDatabase) {
    let impatient = db.repository_with(&PoolSettings {
        min_idle: 0,
        connection: ConnectionSettings {
            statement_timeout: std::time::Duration::from_millis(1),
            ..ConnectionSettings::default()
        },
        ..PoolSettings::default()
    });
    let records: Vec<_> = (0..3000)
        .map(|i| item_record("tenant-a", json!({"name": format!("b-{i}")})))
        .collect();
    assert_eq!(
        impatient.upsert(&records).unwrap(),
        3000,
        "{db:?}: a batch takes longer than 1 ms and must not be cancelled"
    );
    impatient
        .finish_bulk_load()
        .unwrap_or_else(|e| panic!("{db:?}: ANALYZE after the import was cancelled: {e}"));
    if db.backend() == Backend::Postgres {
        // The counters' indexes were rebuilt, and every index is valid (a failed REINDEX
        // CONCURRENTLY leaves an invalid one behind)...
        execute_sql(
            &db.repository(),
            "DO $$ BEGIN \
                 IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                            WHERE c.relnamespace = current_schema()::regnamespace \
                              AND NOT i.indisvalid) THEN \
                     RAISE EXCEPTION 'an invalid index is left'; \
                 END IF; \
             END $$",
        );
        // ...and the reads' timeout is in force again.
        let slow = try_execute_sql(&impatient, "SELECT pg_sleep(0.2)");
        assert!(
            slow.as_ref()
                .is_err_and(|e| e.contains("statement timeout")),
            "{slow:?}"
        );
    }
    // Checking and rebuilding the counters count every row: operators' commands, spared
    // too.
    assert_eq!(
        impatient.check_counters().map_err(|e| e.to_string()),
        Ok(vec![]),
        "{db:?}"
    );
    assert_eq!(
        impatient.rebuild_counters().map_err(|e| e.to_string()),
        Ok(vec![]),
        "{db:?}"
    );
}

/// PostgreSQL only: SQLite has no statement timeout that migrations could run into.
#[test]
fn migrations_run_without_the_statement_timeout_and_put_it_back() {
    let Some(db) = postgres_database() else {
        return;
    };
    // A new database, migrated from nothing by a pool whose statements may take 1 ms: the
    // migrations take longer. One connection, so that the check below runs in the session
    // that migrated.
    let impatient = Repository::open(
        &DatabaseUrl::parse(db.url()).unwrap(),
        &PoolSettings {
            max_size: 1,
            min_idle: 0,
            connection: ConnectionSettings {
                statement_timeout: std::time::Duration::from_millis(1),
                ..ConnectionSettings::default()
            },
            ..PoolSettings::default()
        },
    )
    .unwrap();
    // The session's one statement before the timeout is lifted (reading its value) may itself
    // outlast 1 ms on a loaded machine; it is retried. A migration statement run under the
    // timeout would be cancelled on every attempt, and the test fails.
    let mut applied = 0;
    for _ in 0..5 {
        match impatient.migrate() {
            Err(StorageError::Timeout) => continue,
            outcome => {
                applied += outcome.unwrap();
                break;
            }
        }
    }
    assert!(applied > 0);
    // Checked through a patient pool: any statement of the impatient one may outlast 1 ms on
    // a loaded machine, the readiness query included.
    assert!(db.repository().is_ready().unwrap());
    // The session's own timeout is back in force afterwards.
    let slow = try_execute_sql(&impatient, "SELECT pg_sleep(0.2)");
    assert!(
        slow.as_ref()
            .is_err_and(|e| e.contains("statement timeout")),
        "{slow:?}"
    );
}

fn pages_follow_the_sort_order_and_the_marker(db: TestDatabase) {
    let repo = db.repository();
    // Ties on created_at make `id` decide.
    let records: Vec<_> = (0..9)
        .map(|i| {
            item_record("tenant-a", json!({
                "name": (["b", "a", "C"][i % 3]),
                "created_at": format!("2020-01-0{}T00:00:00", 1 + i / 2),
                "protected_at": if i % 4 == 0 { json!(null) } else { json!(format!("2021-01-0{}T00:00:00", 1 + i % 4)) },
            }))
        })
        .collect();
    repo.upsert(&records).unwrap();
    let filter = scoped("tenant-a", &[]);

    for sort_text in [
        "created_at",
        "created_at:asc",
        "name:asc,created_at:desc",
        "name,id:asc",
        "protected_at:asc",
        "protected_at",
        "status,updated_at:asc",
        "id:asc",
    ] {
        let sort = SortSpec::parse("sort", sort_text).unwrap();
        let expected = reference_order(&records, &sort);
        for limit in [1, 2, 4, 9, 10] {
            assert_eq!(
                list_all(&repo, &filter, &sort, limit),
                expected,
                "{db:?} sort {sort_text} limit {limit}"
            );
        }
    }

    let page = repo
        .list(
            &filter,
            &SortSpec::default(),
            &PageRequest {
                limit: 3,
                marker: None,
                offset: 2,
            },
        )
        .unwrap();
    let expected = reference_order(&records, &SortSpec::default());
    assert_eq!(
        page.last_id.as_deref(),
        Some(expected[4].as_str()),
        "{db:?} offset"
    );

    let unknown = ItemId::new_random();
    let err = repo
        .list(
            &filter,
            &SortSpec::default(),
            &PageRequest {
                limit: 3,
                marker: Some(unknown),
                offset: 0,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, StorageError::UnknownMarker),
        "{db:?}: {err:?}"
    );
    let other_tenant_marker = records[0].id.clone();
    let err = repo
        .list(
            &scoped("tenant-b", &[]),
            &SortSpec::default(),
            &PageRequest {
                limit: 3,
                marker: Some(other_tenant_marker),
                offset: 0,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, StorageError::UnknownMarker),
        "{db:?}: another tenant's item is no marker"
    );
    // After the last item: an empty page, not an unknown marker.
    let last = expected.last().unwrap();
    let page = repo
        .list(
            &filter,
            &SortSpec::default(),
            &PageRequest {
                limit: 3,
                marker: Some(ItemId::parse("marker", last).unwrap()),
                offset: 0,
            },
        )
        .unwrap();
    assert!(page.documents.is_empty() && !page.has_more, "{db:?}");
}

/// The ids of `records` of tenant-a in `sort` order, computed without a database.
fn reference_order(records: &[BackupRecord], sort: &SortSpec) -> Vec<String> {
    reference_list(records, &scoped("tenant-a", &[]), sort)
}

#[test]
fn a_list_query_and_its_count_parse_the_same_criteria() {
    let query = [("status", "error"), ("name", "x"), ("limit", "5")];
    assert_eq!(
        ListQuery::from_pairs(&query).unwrap().criteria,
        CountQuery::from_pairs(&query).unwrap().criteria
    );
}

fn parallel_bulk_writers_keep_the_last_version_of_each_item(db: TestDatabase) {
    let repo = db.repository();
    let version = |round: usize, i: usize| {
        let status = match (round, i % 2) {
            (0, _) => "protecting",
            (1, _) | (2, 0) => "available",
            _ => "error",
        };
        item_record(
            "tenant-a",
            json!({"id": format!("00000000-0000-4000-8000-{i:012}"), "name": format!("round-{round}"), "status": status}),
        )
    };
    let indexes: Vec<usize> = (0..300).collect();
    let writer = csbs_storage::BulkWriter::start(&repo, 3, |_| {});
    // Every item three times, in batches that cut across the writers' shares.
    for round in 0..3 {
        for chunk in indexes.chunks(70) {
            let batch = chunk.iter().map(|&i| version(round, i)).collect();
            writer.write(batch).unwrap();
        }
    }
    assert_eq!(
        writer.finish().unwrap(),
        csbs_storage::BulkTotals {
            written: 900,
            superseded: 0
        },
        "{db:?}: every version changed its item"
    );
    assert_eq!(
        count(&repo, "tenant-a", &[("name", "round-2")]),
        300,
        "{db:?}"
    );
    assert_eq!(
        count(&repo, "tenant-a", &[("status", "error")]),
        150,
        "{db:?}"
    );
    assert_eq!(
        count(&repo, "tenant-a", &[("status", "available")]),
        150,
        "{db:?}"
    );
    assert_eq!(
        count(&repo, "tenant-a", &[("status", "protecting")]),
        0,
        "{db:?}"
    );
    assert!(repo.check_counters().unwrap().is_empty(), "{db:?}");
}

fn bulk_writers_never_outnumber_the_pool(db: TestDatabase) {
    let one_connection = db.repository_with(&PoolSettings {
        max_size: 1,
        min_idle: 0,
        // Long enough to connect, shorter than writing one batch: a writer left waiting
        // for the connection would fail.
        connection_timeout: std::time::Duration::from_millis(150),
        ..PoolSettings::default()
    });
    one_connection.ping().unwrap(); // the connection is open before the writers start
    let writer = csbs_storage::BulkWriter::start(&one_connection, 4, |_| {});
    assert_eq!(writer.writers(), 1, "{db:?}");
    for round in 0..2 {
        let batch = (0..5000)
            .map(|i| item_record("tenant-a", json!({"name": format!("r{round}-{i}")})))
            .collect();
        writer.write(batch).unwrap();
    }
    assert_eq!(writer.finish().unwrap().written, 10_000, "{db:?}");
}

/// SQLite has one writer at a time, and an import holds the write lock for a whole batch (20,000
/// items by default): a service write that arrives meanwhile waits for the batch to commit
/// instead of failing, and only a lock held past the busy timeout makes it unavailable (503),
/// with nothing written. A raw connection holding the lock stands in for the batch, so that the
/// overlap is certain.
#[test]
fn on_sqlite_a_service_write_waits_out_a_bulk_batch_within_the_busy_timeout() {
    use csbs_domain::{CurrentItem, Plan};
    use csbs_storage::{Selection, StoredAnswer, WriteOutcome};
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    use std::time::{Duration, Instant};

    let db = csbs_test_support::TestDatabase::sqlite();
    let busy_timeout = Duration::from_millis(1500);
    let repository = db.repository_with(&PoolSettings {
        min_idle: 0,
        connection: ConnectionSettings {
            sqlite_busy_timeout: busy_timeout,
            ..ConnectionSettings::default()
        },
        ..PoolSettings::default()
    });
    let path = db.url().strip_prefix("sqlite://").unwrap().to_owned();
    // Holds the write lock for `held`, then commits; returns once the lock is taken.
    let hold_write_lock = |held: Duration| {
        let (taken, is_taken) = std::sync::mpsc::channel();
        let path = path.clone();
        let holder = std::thread::spawn(move || {
            let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
            conn.batch_execute("BEGIN IMMEDIATE").unwrap();
            taken.send(()).unwrap();
            std::thread::sleep(held);
            conn.batch_execute("COMMIT").unwrap();
        });
        is_taken.recv().unwrap();
        holder
    };
    let write = |id: &str| {
        let record = item_record("tenant-a", json!({ "id": id }));
        let project = record.project_id.clone();
        repository.write(
            &project,
            &Selection::Items(vec![record.id.clone()]),
            None,
            1_700_000_000_000_000,
            |_current| {
                Ok::<_, ()>((
                    vec![Plan::Write(CurrentItem { record, version: 1 })],
                    StoredAnswer {
                        status: 201,
                        body: String::new(),
                    },
                ))
            },
        )
    };
    let first = "8a0b7c52-3b7e-4b0a-9a57-6f1f3f0c0001";
    let second = "8a0b7c52-3b7e-4b0a-9a57-6f1f3f0c0002";

    // A batch shorter than the busy timeout: the write waits for it, then lands.
    let held = Duration::from_millis(600);
    let started = Instant::now();
    let holder = hold_write_lock(held);
    let outcome = write(first).expect("the write waits for the lock");
    let waited = started.elapsed();
    holder.join().unwrap();
    assert!(matches!(outcome, WriteOutcome::Done(_)), "{outcome:?}");
    assert!(
        waited >= held,
        "the write cannot have landed while the lock was held ({waited:?})"
    );

    // A batch longer than the busy timeout: unavailable, and nothing written.
    let holder = hold_write_lock(busy_timeout * 2);
    let error = write(second).expect_err("the lock outlasts the busy timeout");
    holder.join().unwrap();
    assert!(
        matches!(error, StorageError::Unavailable(_)),
        "a locked database is a 503, not a 500: {error:?}"
    );
    let stored = count(&repository, "tenant-a", &[]);
    assert_eq!(
        stored, 1,
        "the first write stays, the refused one left nothing"
    );
}

backend_tests!(
    every_filter_narrows_count_and_list_alike,
    documents_come_back_as_they_went_in,
    importing_twice_changes_nothing_and_a_change_replaces,
    the_last_of_the_same_item_in_one_batch_wins,
    the_statement_timeout_spares_bulk_imports_and_their_analyze,
    pages_follow_the_sort_order_and_the_marker,
    parallel_bulk_writers_keep_the_last_version_of_each_item,
    bulk_writers_never_outnumber_the_pool,
);
