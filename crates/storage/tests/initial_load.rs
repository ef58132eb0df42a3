//! Initial loads: an import into an empty table drops the secondary indexes and counter
//! triggers, loads the rows, and makes indexes and counters again from them; a load that stops
//! half way is completed by the next, and counts never read counters that are not made yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use csbs_domain::{
    format_timestamp, BackupFilter, BackupRecord, BackupStatus, CountQuery, FromQueryPairs,
    ProjectId, TenantScope,
};
use csbs_storage::{BulkLoad, DbConnection, Repository, StorageError};
use csbs_test_support::{backend_tests, item_record, TestDatabase};
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde_json::json;

const BASE: i64 = 1_600_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Definition {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// The secondary indexes and triggers of `backup_items`, with their SQL.
fn catalog(repository: &Repository) -> Vec<Definition> {
    let mut conn = repository.connection().unwrap();
    let mut definitions: Vec<Definition> = match &mut *conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "SELECT i.relname::text AS name, pg_get_indexdef(i.oid) AS definition \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = 'backup_items'::regclass AND NOT x.indisprimary \
             UNION ALL SELECT tgname::text, pg_get_triggerdef(oid) FROM pg_trigger \
             WHERE tgrelid = 'backup_items'::regclass AND NOT tgisinternal",
        )
        .load(pg)
        .unwrap(),
        DbConnection::Sqlite(sqlite) => diesel::sql_query(
            "SELECT name, sql AS definition FROM sqlite_master \
             WHERE tbl_name = 'backup_items' AND type IN ('index', 'trigger') \
               AND sql IS NOT NULL",
        )
        .load(sqlite)
        .unwrap(),
    };
    definitions.sort();
    definitions
}

fn records(tenant: &str, count: usize, offset: usize) -> Vec<BackupRecord> {
    let zones = [Some("eu-de-01"), Some("eu-de-02"), None];
    (0..count)
        .map(|i| {
            let i = i + offset;
            item_record(
                tenant,
                json!({
                    "status": BackupStatus::ALL[i % BackupStatus::ALL.len()].as_str(),
                    "created_at": format_timestamp(BASE + i as i64 * 7 * HOUR + 11),
                    "policy_id": if i.is_multiple_of(3) { Some("pol1") } else { None },
                    "extend_info": {"resource_az": zones[i % zones.len()]},
                }),
            )
        })
        .collect()
}

/// How many of the items `range` of [`records`] a count sees (every status but deleted).
fn visible(range: std::ops::Range<usize>) -> u64 {
    range
        .filter(|i| BackupStatus::ALL[i % BackupStatus::ALL.len()] != BackupStatus::Deleted)
        .count() as u64
}

fn filter(tenant: Option<&str>, query: &[(&str, &str)]) -> BackupFilter {
    BackupFilter {
        scope: match tenant {
            Some(t) => TenantScope::Project(ProjectId::parse("p", t).unwrap()),
            None => TenantScope::AllTenants,
        },
        criteria: CountQuery::from_pairs(query).unwrap().criteria,
    }
}

/// Counter-backed counts of both families, per tenant and across tenants.
fn filters() -> Vec<BackupFilter> {
    let queries: [&[(&str, &str)]; 4] = [
        &[],
        &[("status", "available")],
        &[("az", "eu-de-01"), ("start_time", "2020-09-14T00:00:00Z")],
        &[("policy_id", "pol1"), ("end_time", "2020-10-30T05:30:00Z")],
    ];
    [Some("t0"), Some("t1"), None]
        .into_iter()
        .flat_map(|tenant| queries.iter().map(move |q| filter(tenant, q)))
        .collect()
}

fn assert_counts_exact(repository: &Repository, label: &str) {
    for f in filters() {
        assert_eq!(
            repository.count(&f).unwrap(),
            repository.count_rows(&f).unwrap(),
            "{label}: {f:?}"
        );
    }
    assert_eq!(repository.check_counters().unwrap(), vec![], "{label}");
}

fn an_initial_load_makes_indexes_and_counters_after_the_rows(db: TestDatabase) {
    let repository = db.repository();
    let before = catalog(&repository);
    assert!(before.len() > 5, "{db:?}: {before:?}");

    assert_eq!(repository.begin_bulk_load().unwrap(), BulkLoad::Initial);
    assert_eq!(
        catalog(&repository),
        vec![],
        "{db:?}: set aside while loading"
    );
    repository.upsert(&records("t0", 300, 0)).unwrap();
    repository.upsert(&records("t1", 120, 0)).unwrap();
    // Counts do not read counters that are not made yet; the rows are all there.
    let everything = filter(Some("t0"), &[]);
    assert!(
        matches!(
            repository.count(&everything),
            Err(StorageError::Unavailable(_))
        ),
        "{db:?}"
    );
    assert_eq!(repository.count_rows(&everything).unwrap(), visible(0..300));

    repository.finish_bulk_load().unwrap();
    assert_eq!(
        catalog(&repository),
        before,
        "{db:?}: made again as they were"
    );
    assert_counts_exact(&repository, &format!("{db:?} after the initial load"));

    // Now the table holds items: the next load keeps indexes and counters as it goes.
    assert_eq!(repository.begin_bulk_load().unwrap(), BulkLoad::Incremental);
    assert_eq!(catalog(&repository), before, "{db:?}");
    repository.upsert(&records("t1", 50, 500)).unwrap();
    repository.finish_bulk_load().unwrap();
    assert_counts_exact(&repository, &format!("{db:?} after a second load"));
}

fn an_interrupted_initial_load_is_completed_by_the_next(db: TestDatabase) {
    let before = catalog(&db.repository());
    {
        let repository = db.repository();
        assert_eq!(repository.begin_bulk_load().unwrap(), BulkLoad::Initial);
        repository.upsert(&records("t0", 200, 0)).unwrap();
        // The importer stops here: no finish.
    }
    let repository = db.repository();
    assert!(matches!(
        repository.count(&filter(None, &[("status", "error")])),
        Err(StorageError::Unavailable(_))
    ));
    // The table holds items, but the load is not finished: it goes on as an initial load.
    assert_eq!(repository.begin_bulk_load().unwrap(), BulkLoad::Initial);
    repository.upsert(&records("t0", 150, 100)).unwrap();
    repository.upsert(&records("t1", 40, 0)).unwrap();
    repository.finish_bulk_load().unwrap();
    assert_eq!(catalog(&repository), before, "{db:?}");
    // The first load's 200 items of t0 and the second's 150 (new ids: new items).
    assert_eq!(
        repository.count_rows(&filter(Some("t0"), &[])).unwrap(),
        visible(0..200) + visible(100..250),
        "{db:?}: nothing written was lost"
    );
    assert_counts_exact(&repository, &format!("{db:?} after completing the load"));
    // Finishing again has nothing left to do.
    repository.finish_bulk_load().unwrap();
    assert_eq!(catalog(&repository), before, "{db:?}");
}

fn a_finishing_step_that_stopped_half_way_is_completed(db: TestDatabase) {
    let repository = db.repository();
    let before = catalog(&repository);
    assert_eq!(repository.begin_bulk_load().unwrap(), BulkLoad::Initial);
    repository.upsert(&records("t0", 120, 0)).unwrap();
    // The finishing step built some of the indexes (each commits on its own) and stopped
    // before the counters: here, the first and the last saved index.
    {
        let mut conn = repository.connection().unwrap();
        let saved: Vec<Definition> = diesel::sql_query(
            "SELECT name, definition FROM deferred_for_initial_load \
             WHERE kind = 'index' ORDER BY name",
        )
        .load(&mut *conn)
        .unwrap();
        assert!(saved.len() > 2, "{db:?}: {saved:?}");
        for index in [&saved[0], &saved[saved.len() - 1]] {
            diesel::sql_query(&index.definition)
                .execute(&mut *conn)
                .unwrap();
        }
    }
    // A write between the builds, with the triggers still set aside.
    repository.upsert(&records("t1", 30, 0)).unwrap();
    assert!(matches!(
        repository.count(&filter(Some("t1"), &[])),
        Err(StorageError::Unavailable(_))
    ));
    repository.finish_bulk_load().unwrap();
    assert_eq!(catalog(&repository), before, "{db:?}: each index once");
    assert_eq!(
        repository.count(&filter(Some("t1"), &[])).unwrap(),
        visible(0..30),
        "{db:?}"
    );
    assert_counts_exact(&repository, &format!("{db:?} after finishing again"));
}

backend_tests!(
    an_initial_load_makes_indexes_and_counters_after_the_rows,
    an_interrupted_initial_load_is_completed_by_the_next,
    a_finishing_step_that_stopped_half_way_is_completed,
);
