//! A pooled connection does not outlive what happened to it: one whose session turned
//! read-only is replaced at once, and every connection is replaced after its lifetime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use csbs_domain::{CurrentItem, Plan, ProjectId};
use csbs_storage::{
    Backend, PoolSettings, Repository, Selection, StorageError, StoredAnswer, WriteOutcome,
};
use csbs_test_support::{backend_tests, execute_sql, item_record, try_execute_sql, TestDatabase};
use serde_json::json;

fn single_connection(db: &TestDatabase, max_lifetime: Duration) -> Repository {
    db.repository_with(&PoolSettings {
        max_size: 1,
        min_idle: 0,
        max_lifetime,
        ..PoolSettings::default()
    })
}

/// Stores one new item of `tenant-a` through the ingest path.
fn write_one(repository: &Repository) -> Result<WriteOutcome<()>, StorageError> {
    let record = item_record("tenant-a", json!({}));
    let project = ProjectId::parse("p", "tenant-a").unwrap();
    repository.write(
        &project,
        &Selection::Items(vec![record.id.clone()]),
        None,
        1_700_000_000_000_000,
        |_current| {
            Ok((
                vec![Plan::Write(CurrentItem { record, version: 1 })],
                StoredAnswer {
                    status: 201,
                    body: String::new(),
                },
            ))
        },
    )
}

/// A temporary table exists only on the connection that made it: whether the pool still hands
/// out that connection.
fn same_connection(repository: &Repository) -> bool {
    try_execute_sql(repository, "SELECT count(*) FROM connection_marker").is_ok()
}

/// After a failover the service's connections reached a standby, or a session kept
/// `default_transaction_read_only`: every write answered 500, and kept doing so after the fault
/// was gone. A read-only refusal is "unavailable" (503), and its connection is replaced.
fn a_read_only_session_is_unavailable_and_replaced(db: TestDatabase) {
    let repository = single_connection(&db, Duration::from_secs(1800));
    execute_sql(
        &repository,
        "CREATE TEMPORARY TABLE connection_marker (x INTEGER)",
    );
    execute_sql(
        &repository,
        match db.backend() {
            Backend::Postgres => "SET default_transaction_read_only = on",
            Backend::Sqlite => "PRAGMA query_only = ON",
        },
    );
    assert!(same_connection(&repository));
    let error = write_one(&repository).expect_err("a read-only session refuses writes");
    assert!(
        matches!(error, StorageError::ReadOnly(_)) && error.is_transient(),
        "{db:?}: {error:?}"
    );
    assert!(
        !same_connection(&repository),
        "{db:?}: the read-only connection is not handed out again"
    );
    assert!(
        matches!(write_one(&repository), Ok(WriteOutcome::Done(_))),
        "{db:?}: the next connection writes"
    );
}

/// Connections are closed on their return after their lifetime, even while the pool is busy.
fn connections_are_replaced_after_their_lifetime(db: TestDatabase) {
    let repository = single_connection(&db, Duration::from_millis(700));
    execute_sql(
        &repository,
        "CREATE TEMPORARY TABLE connection_marker (x INTEGER)",
    );
    for _ in 0..3 {
        assert!(same_connection(&repository), "{db:?}: young, kept");
    }
    std::thread::sleep(Duration::from_millis(800));
    // The first return after the lifetime closes it; the one after is a new connection.
    let _ = same_connection(&repository);
    assert!(!same_connection(&repository), "{db:?}: replaced");
}

/// SQLite had no statement timeout: four heavy lists of one tenant held every connection and the
/// other tenants got 503s. A statement past `statement_timeout` is interrupted (a timeout, 503),
/// the connection stays usable, and the work that must run long (imports, counter checks,
/// migrations) is exempt, as on PostgreSQL.
#[test]
fn sqlite_statements_are_interrupted_after_the_statement_timeout() {
    let db = TestDatabase::sqlite();
    let repository = db.repository_with(&PoolSettings {
        max_size: 1,
        min_idle: 0,
        connection: csbs_storage::ConnectionSettings {
            statement_timeout: Duration::from_millis(1),
            ..Default::default()
        },
        ..PoolSettings::default()
    });
    // Far more than a millisecond of work (a hundred million rows).
    let endless = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r \
                   WHERE i < 100000000) SELECT count(*) FROM r";
    let started = std::time::Instant::now();
    let error = try_execute_sql(&repository, endless).expect_err("interrupted");
    assert!(error.contains("interrupted"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The same connection goes on serving.
    execute_sql(&repository, "SELECT 1");

    // An import batch and a counter check take longer than a millisecond, and are exempt.
    let records: Vec<_> = (0..3000)
        .map(|i| item_record("tenant-a", json!({"name": format!("web-{i}")})))
        .collect();
    assert_eq!(repository.upsert(&records).unwrap(), 3000);
    assert!(repository.check_counters().unwrap().is_empty());
    // And afterwards the timeout applies again.
    assert!(try_execute_sql(&repository, endless).is_err());
}

backend_tests!(
    a_read_only_session_is_unavailable_and_replaced,
    connections_are_replaced_after_their_lifetime,
);
