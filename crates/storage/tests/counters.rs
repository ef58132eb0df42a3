//! The trigger-kept counters: every counter-backed count equals `count(*)` over the rows,
//! after every step of random write sequences and while concurrent writers run, on both
//! backends; drift is reported and repaired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use csbs_domain::FromQueryPairs;
use csbs_domain::{
    format_timestamp, plan_status, BackupFilter, BackupRecord, BackupStatus, CountQuery, Plan,
    ProjectId, StatusUpdate, TenantScope,
};
use csbs_storage::{
    CounterBucket, CounterDimensions, DbConnection, Repository, Selection, StoredAnswer,
    WriteOutcome,
};
use csbs_test_support::{backend_tests, execute_sql, item_record, query_i64, TestDatabase};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
const BLOCK: i64 = 32 * DAY;
const BASE: i64 = 1_600_000_000_000_000; // 2020-09-13

/// An item's dimensions: its type, zone, image type and policy (`None`: the field is null).
type Dimensions<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// Combinations of dimensions that items are given, some values missing or empty.
const DIMENSIONS: [Dimensions<'static>; 4] = [
    ("OS::Nova::Server", Some("eu-de-01"), Some("backup"), None),
    (
        "OS::Cinder::Volume",
        None,
        Some("replication"),
        Some("pol1"),
    ),
    ("OS::Nova::Server", Some(""), Some("backup"), Some("pol2")),
    ("OS::Cinder::Volume", Some("eu-de-01"), None, Some("pol1")),
];

/// The values one dimension is changed to, alone: types, zones, image types, policies.
const TYPES: [&str; 2] = ["OS::Nova::Server", "OS::Cinder::Volume"];
const ZONES: [Option<&str>; 4] = [Some("eu-de-01"), Some("eu-de-02"), None, Some("")];
const IMAGE_TYPES: [Option<&str>; 3] = [Some("backup"), Some("replication"), None];
const POLICIES: [Option<&str>; 3] = [None, Some("pol1"), Some("pol2")];

/// Dimension filters, alone and together, including values no item has.
const DIMENSION_FILTERS: [&[(&str, &str)]; 8] = [
    &[("resource_type", "OS::Cinder::Volume")],
    &[("az", "eu-de-01")],
    &[("az", "eu-de-01"), ("az", "eu-de-09")],
    &[("image_type", "replication")],
    &[("policy_id", "pol1")],
    &[("policy_id", "pol1"), ("az", "eu-de-01")],
    &[
        ("resource_type", "OS::Nova::Server"),
        ("image_type", "backup"),
        ("policy_id", "pol2"),
    ],
    &[("az", "never-seen-zone")],
];

fn filter(tenant: Option<&str>, query: &[(String, String)]) -> BackupFilter {
    BackupFilter {
        scope: match tenant {
            Some(t) => TenantScope::Project(ProjectId::parse("p", t).unwrap()),
            None => TenantScope::AllTenants,
        },
        criteria: CountQuery::from_pairs(query).unwrap().criteria,
    }
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Queries the counters answer: totals, statuses, and time ranges with whole and partial
/// blocks, days and hours; with `dimensions`, each also with two of the dimension filters (in
/// turn, so that every filter meets every shape of range).
fn counter_queries(times: &[i64], dimensions: bool) -> Vec<Vec<(String, String)>> {
    let mut queries = vec![
        vec![],
        vec![("status".to_owned(), "available".to_owned())],
        vec![
            ("status".to_owned(), "deleted".to_owned()),
            ("status".to_owned(), "error".to_owned()),
        ],
    ];
    for window in times.windows(2) {
        let (a, b) = (window[0].min(window[1]), window[0].max(window[1]));
        queries.push(vec![
            ("start_time".into(), format_timestamp(a)),
            ("end_time".into(), format_timestamp(b)),
        ]);
        queries.push(vec![
            ("start_time".into(), format_timestamp(a)),
            ("status".into(), "available".into()),
        ]);
        queries.push(vec![("end_time".into(), format_timestamp(b))]);
        // A range with whole blocks inside and partial ones at its ends.
        queries.push(vec![
            ("start_time".into(), format_timestamp(a - 40 * DAY)),
            ("end_time".into(), format_timestamp(b + 40 * DAY)),
        ]);
        // The same range widened to whole hours, days and blocks: no partial unit at
        // either end.
        for unit in [HOUR, DAY, BLOCK] {
            let (start, end) = (a - a.rem_euclid(unit), b - b.rem_euclid(unit) + unit - 1);
            queries.push(vec![
                ("start_time".into(), format_timestamp(start)),
                ("end_time".into(), format_timestamp(end)),
            ]);
        }
    }
    if !dimensions {
        return queries;
    }
    let mut with_dimensions = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        for turn in [i, i + 3] {
            let mut query = query.clone();
            query.extend(pairs(DIMENSION_FILTERS[turn % DIMENSION_FILTERS.len()]));
            with_dimensions.push(query);
        }
    }
    queries.extend(with_dimensions);
    queries
}

/// Every counter-backed count of [`counter_queries`] that differs from the rows' count, per
/// tenant and across tenants, as `(tenant, query, counted, rows)`.
fn count_mismatches(repository: &Repository, times: &[i64], dimensions: bool) -> Vec<String> {
    let mut mismatches = Vec::new();
    for tenant in [Some("t0"), Some("t1"), None] {
        for query in counter_queries(times, dimensions) {
            let f = filter(tenant, &query);
            let (counted, rows) = (
                repository.count(&f).unwrap(),
                repository.count_rows(&f).unwrap(),
            );
            if counted != rows {
                mismatches.push(format!("{tenant:?} {query:?}: {counted} vs {rows} rows"));
            }
        }
    }
    mismatches
}

fn assert_counts_exact(
    repository: &Repository,
    label: &str,
    times: &[i64],
) -> Result<(), TestCaseError> {
    let mismatches = count_mismatches(repository, times, true);
    prop_assert!(mismatches.is_empty(), "{label}: {mismatches:?}");
    let drift = repository.check_counters().unwrap();
    prop_assert!(drift.is_empty(), "{label}: {drift:?}");
    Ok(())
}

#[derive(Debug, Clone)]
enum Step {
    /// New items (tenant, status, created_at offset in minutes, dimensions).
    Insert(Vec<(usize, BackupStatus, i64, usize)>),
    /// Re-import existing items with another status, creation time and dimensions.
    Reimport(Vec<(usize, BackupStatus, i64, usize)>),
    /// Re-import an existing item with one dimension changed (which one, and its new value's
    /// index), all else as stored.
    Redimension(usize, usize, usize),
    /// Move an existing item along its lifecycle through the write path.
    Transition(usize, BackupStatus),
    /// Delete an existing item's row.
    Delete(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let item = (
        0..2usize,
        select(&BackupStatus::ALL[..]),
        -48 * 60..200 * 60i64,
        0..DIMENSIONS.len(),
    );
    prop_oneof![
        proptest::collection::vec(item.clone(), 1..6).prop_map(Step::Insert),
        proptest::collection::vec(
            (
                0..1000usize,
                select(&BackupStatus::ALL[..]),
                -48 * 60..200 * 60i64,
                0..DIMENSIONS.len(),
            ),
            1..4
        )
        .prop_map(Step::Reimport),
        (0..1000usize, 0..4usize, 0..4usize).prop_map(|(i, k, v)| Step::Redimension(i, k, v)),
        (0..1000usize, select(&BackupStatus::ALL[..])).prop_map(|(i, s)| Step::Transition(i, s)),
        (0..1000usize).prop_map(Step::Delete),
    ]
}

/// An item created `minutes` after (or before) `BASE`, plus a few microseconds, so that items
/// fall inside hours and days rather than on their boundaries.
fn record(tenant: usize, status: BackupStatus, minutes: i64, id: Option<&str>) -> BackupRecord {
    dimensioned(
        tenant,
        status,
        BASE + minutes * 60_000_000 + 123,
        id,
        DIMENSIONS[0],
    )
}

/// An item created at `at` with the combination `dimensions` of [`DIMENSIONS`].
fn dimensioned(
    tenant: usize,
    status: BackupStatus,
    at: i64,
    id: Option<&str>,
    (resource_type, az, image_type, policy_id): Dimensions<'_>,
) -> BackupRecord {
    let mut overrides = json!({
        "status": status.as_str(),
        "created_at": format_timestamp(at),
        "resource_type": resource_type,
        "policy_id": policy_id,
        "extend_info": {
            "resource_type": resource_type,
            "resource_az": az,
            "image_type": image_type,
        },
    });
    if let Some(id) = id {
        overrides["id"] = json!(id);
    }
    item_record(&format!("t{tenant}"), overrides)
}

fn tenant_of(record: &BackupRecord) -> usize {
    usize::from(record.project_id.as_str() == "t1")
}

fn counters_equal_row_counts_after_every_step(db: TestDatabase) {
    let repository = db.repository();
    let label = format!("{db:?}");
    let stored: RefCell<Vec<BackupRecord>> = RefCell::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(
            &(
                proptest::collection::vec(step(), 1..8),
                proptest::collection::vec(-3 * DAY..10 * DAY, 2..5),
            ),
            |(steps, offsets)| {
                let times: Vec<i64> = offsets.iter().map(|o| BASE + o).collect();
                for step in steps {
                    let mut all = stored.borrow_mut();
                    match step {
                        Step::Insert(items) => {
                            let records: Vec<_> = items
                                .into_iter()
                                .map(|(t, s, minutes, d)| {
                                    let at = BASE + minutes * 60_000_000 + 123;
                                    dimensioned(t, s, at, None, DIMENSIONS[d])
                                })
                                .collect();
                            repository.upsert(&records).unwrap();
                            all.extend(records);
                        }
                        Step::Reimport(items) if !all.is_empty() => {
                            let mut records = Vec::new();
                            for (index, status, minutes, d) in items {
                                let old = &all[index % all.len()];
                                let at = BASE + minutes * 60_000_000 + 123;
                                let new = dimensioned(
                                    tenant_of(old),
                                    status,
                                    at,
                                    Some(old.id.as_str()),
                                    DIMENSIONS[d],
                                );
                                if !records.iter().any(|r: &BackupRecord| r.id == new.id) {
                                    records.push(new);
                                }
                            }
                            repository.upsert(&records).unwrap();
                            for new in &records {
                                if let Some(old) = all.iter_mut().find(|r| r.id == new.id) {
                                    *old = new.clone();
                                }
                            }
                        }
                        Step::Redimension(index, which, value) if !all.is_empty() => {
                            let i = index % all.len();
                            let old = &all[i];
                            let mut dimensions: Dimensions<'_> = (
                                old.resource_type.as_str(),
                                old.resource_az.as_deref(),
                                old.image_type.as_deref(),
                                old.policy_id.as_deref(),
                            );
                            match which {
                                0 => dimensions.0 = TYPES[value % TYPES.len()],
                                1 => dimensions.1 = ZONES[value % ZONES.len()],
                                2 => dimensions.2 = IMAGE_TYPES[value % IMAGE_TYPES.len()],
                                _ => dimensions.3 = POLICIES[value % POLICIES.len()],
                            }
                            // As stored: the status may have moved on since (a transition).
                            let status = repository
                                .find(&old.project_id, &old.id)
                                .unwrap()
                                .map_or(old.status, |item| item.status);
                            let new = dimensioned(
                                tenant_of(old),
                                status,
                                old.created_at,
                                Some(old.id.as_str()),
                                dimensions,
                            );
                            repository.upsert(std::slice::from_ref(&new)).unwrap();
                            all[i] = new;
                        }
                        Step::Delete(index) if !all.is_empty() => {
                            let at = index % all.len();
                            let old = all.remove(at);
                            execute_sql(
                                &repository,
                                &format!(
                                    "DELETE FROM backup_items WHERE project_id = '{}' AND id = '{}'",
                                    old.project_id.as_str(),
                                    old.id.as_str()
                                ),
                            );
                        }
                        Step::Transition(index, status) if !all.is_empty() => {
                            let target = all[index % all.len()].clone();
                            let outcome = repository
                                .write(
                                    &target.project_id,
                                    &Selection::Items(vec![target.id.clone()]),
                                    None,
                                    BASE,
                                    |current| {
                                        let current = current.into_iter().next().flatten();
                                        let version = current.as_ref().map_or(1, |c| c.version + 1);
                                        let update = StatusUpdate {
                                            status,
                                            version,
                                            extend_info: Default::default(),
                                            protected_at: None,
                                        };
                                        plan_status(current.as_ref(), &target.id, update, BASE).map(
                                            |plan| {
                                                (
                                                    vec![plan],
                                                    StoredAnswer {
                                                        status: 200,
                                                        body: String::new(),
                                                    },
                                                )
                                            },
                                        )
                                    },
                                )
                                .unwrap();
                            prop_assert!(
                                !matches!(outcome, WriteOutcome::Raced),
                                "no concurrent writer here"
                            );
                        }
                        _ => {}
                    }
                    // Ranges that start or end a microsecond either side of stored
                    // items: partial hours at the ends that hold items, or just miss them.
                    let mut times = times.clone();
                    for item in all.iter().rev().take(2) {
                        times.extend([item.created_at - 1, item.created_at + 1]);
                    }
                    drop(all);
                    assert_counts_exact(&repository, &label, &times)?;
                }
                Ok(())
            },
        )
        .unwrap();
}

fn counters_stay_exact_under_concurrent_writers(db: TestDatabase) {
    let repository = db.repository();
    let records: Vec<_> = (0..40)
        .map(|i| record(i % 2, BackupStatus::Available, i as i64 * 7 * 60, None))
        .collect();
    repository.upsert(&records).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // Writers move the same rows between statuses and dimensions in opposite directions,
    // re-import them, and add new ones: the shapes that deadlock counters updated in
    // arbitrary order.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (repository, records) = (repository.clone(), records.clone());
            std::thread::spawn(move || {
                let statuses = if writer % 2 == 0 {
                    [BackupStatus::Available, BackupStatus::Error]
                } else {
                    [BackupStatus::Error, BackupStatus::Available]
                };
                for round in 0..15 {
                    let batch: Vec<_> = records
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| (i + writer + round) % 3 == 0)
                        .map(|(_, r)| {
                            // Statuses, times and dimensions all move.
                            dimensioned(
                                tenant_of(r),
                                statuses[round % 2],
                                BASE + ((round as i64) * 5 * 60 + 17) * 60_000_000,
                                Some(r.id.as_str()),
                                DIMENSIONS[(round + writer) % DIMENSIONS.len()],
                            )
                        })
                        .collect();
                    let ordered = if writer % 2 == 0 {
                        batch
                    } else {
                        batch.into_iter().rev().collect()
                    };
                    repository.upsert(&ordered).unwrap();
                    repository
                        .upsert(&[dimensioned(
                            writer % 2,
                            BackupStatus::Protecting,
                            BASE + round as i64 * 47 * 60_000_000,
                            None,
                            DIMENSIONS[writer % DIMENSIONS.len()],
                        )])
                        .unwrap();
                }
            })
        })
        .collect();
    let checker = {
        let (repository, stop) = (repository.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut checks = 0;
            while !stop.load(Ordering::SeqCst) {
                let drift = repository.check_counters().unwrap();
                assert!(drift.is_empty(), "drift while writers run: {drift:?}");
                checks += 1;
            }
            checks
        })
    };
    for writer in writers {
        writer
            .join()
            .expect("no writer failed (a deadlock would surface here)");
    }
    stop.store(true, Ordering::SeqCst);
    assert!(checker.join().unwrap() > 0);
    let mismatches = count_mismatches(
        &repository,
        &[BASE - DAY, BASE + 3 * DAY + 5, BASE + 9 * DAY],
        true,
    );
    assert!(mismatches.is_empty(), "{db:?}: {mismatches:?}");
}

fn counters_are_exact_around_the_epoch(db: TestDatabase) {
    // Integer division truncates toward zero in both databases; hours and days before 1970
    // must still round down, in the triggers, in the check and in the range arithmetic.
    const MICRO: i64 = 1;
    let times = [
        -DAY - MICRO,
        -DAY,
        -DAY + MICRO,
        -HOUR - MICRO,
        -HOUR,
        -30 * 60_000_000,
        -MICRO,
        0,
        MICRO,
        HOUR - MICRO,
        HOUR,
        DAY - MICRO,
        DAY + 90 * 60_000_000,
    ];
    let repository = db.repository();
    let records: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            item_record(
                &format!("t{}", i % 2),
                json!({
                    "status": BackupStatus::ALL[i % BackupStatus::ALL.len()].as_str(),
                    "created_at": format_timestamp(at),
                }),
            )
        })
        .collect();
    repository.upsert(&records).unwrap();
    // Every range between two of the times, and a microsecond either side of them.
    let mut bounds: Vec<i64> = times
        .iter()
        .flat_map(|&t| [t - MICRO, t, t + MICRO])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    for tenant in [Some("t0"), Some("t1"), None] {
        for (i, &from) in bounds.iter().enumerate() {
            for &to in &bounds[i..] {
                let f = filter(
                    tenant,
                    &[
                        ("start_time".into(), format_timestamp(from)),
                        ("end_time".into(), format_timestamp(to)),
                    ],
                );
                assert_eq!(
                    repository.count(&f).unwrap(),
                    repository.count_rows(&f).unwrap(),
                    "{db:?} {tenant:?} {from}..={to}"
                );
            }
        }
    }
    assert_eq!(repository.check_counters().unwrap(), vec![], "{db:?}");
}

fn counter_buckets_are_the_databases(db: TestDatabase) {
    // The hour, day and block the range arithmetic computes for a time are the ones the
    // database's own definition (the counter migrations) files its item under: one item per
    // tenant, whose one hourly and one daily counter, and whose dimension counters, are read
    // back.
    const MICRO: i64 = 1;
    let first_year_1 = -62_135_596_800_000_000; // 0001-01-01T00:00:00Z
    let last_year_9999 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
    let times = [
        first_year_1,
        first_year_1 + HOUR - MICRO,
        -DAY - MICRO,
        -DAY,
        -HOUR - MICRO,
        -HOUR,
        -MICRO,
        0,
        HOUR - MICRO,
        DAY - MICRO,
        DAY,
        BASE + 13 * HOUR + 1,
        last_year_9999,
    ];
    let repository = db.repository();
    let records: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            item_record(
                &format!("b{i}"),
                json!({"created_at": format_timestamp(at)}),
            )
        })
        .collect();
    repository.upsert(&records).unwrap();
    for (i, &at) in times.iter().enumerate() {
        let tenant = format!("b{i}");
        let hours = query_i64(
            &repository,
            &format!("SELECT CAST(hour AS BIGINT) AS value FROM item_counts_hourly WHERE project_id = '{tenant}'"),
        );
        let days = query_i64(
            &repository,
            &format!("SELECT CAST(day AS BIGINT) AS value FROM item_counts_daily WHERE project_id = '{tenant}'"),
        );
        let as_bucket = |value: &[i64], bucket: fn(i32) -> CounterBucket| {
            value
                .iter()
                .map(|&v| bucket(i32::try_from(v).unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            as_bucket(&hours, CounterBucket::Hour),
            vec![CounterBucket::hour_of(at)],
            "{db:?} {at}"
        );
        assert_eq!(
            as_bucket(&days, CounterBucket::Day),
            vec![CounterBucket::day_of(at)],
            "{db:?} {at}"
        );
        // The dimension counters file the item under the same hour and day, and their
        // 32-day block.
        let spans = |span: i32| {
            query_i64(
                &repository,
                &format!("SELECT CAST(bucket AS BIGINT) AS value FROM item_dimension_counts WHERE project_id = '{tenant}' AND span = {span}"),
            )
        };
        assert_eq!(spans(0), vec![0], "{db:?} {at}");
        assert_eq!(
            as_bucket(&spans(1), CounterBucket::Block),
            vec![CounterBucket::block_of(at)],
            "{db:?} {at}"
        );
        assert_eq!(
            as_bucket(&spans(2), CounterBucket::Day),
            vec![CounterBucket::day_of(at)],
            "{db:?} {at}"
        );
        assert_eq!(
            as_bucket(&spans(3), CounterBucket::Hour),
            vec![CounterBucket::hour_of(at)],
            "{db:?} {at}"
        );
    }
    assert_eq!(repository.check_counters().unwrap(), vec![], "{db:?}");
}

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The counter migrations' `down.sql` (back to before the dimension counters) leave triggers
/// that keep counting, and migrating up again keeps the counters exact, for what was written
/// in between too.
fn the_counter_migrations_revert_and_reapply(db: TestDatabase) {
    let repository = db.repository();
    let times = [-DAY - 1, -1, 0, BASE, BASE + 3 * HOUR + 7, BASE + 2 * DAY];
    let statuses = [
        BackupStatus::Available,
        BackupStatus::Error,
        BackupStatus::Deleted,
    ];
    let zones = [Some("eu-de-01"), None];
    let round = |round: usize| -> Vec<BackupRecord> {
        times
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                item_record(
                    &format!("t{}", i % 2),
                    json!({
                        "id": format!("00000000-0000-4000-8000-{:012}", i + 10 * (round % 2)),
                        "status": statuses[(i + round) % statuses.len()].as_str(),
                        "created_at": format_timestamp(at + round as i64 * HOUR),
                        "extend_info": {"resource_az": zones[(i + round) % 2]},
                    }),
                )
            })
            .collect()
    };
    // Before the newest migration there are no dimension counters to ask.
    let exact = |when: &str, dimensions: bool| {
        let mismatches = count_mismatches(&repository, &times, dimensions);
        assert!(mismatches.is_empty(), "{db:?} {when}: {mismatches:?}");
    };
    repository.upsert(&round(0)).unwrap();
    {
        let mut conn = repository.connection().unwrap();
        match &mut *conn {
            // Back to before the dimension counters: the two newest migrations.
            DbConnection::Postgresql(pg) => {
                for _ in 0..2 {
                    pg.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
                }
            }
            DbConnection::Sqlite(sqlite) => {
                for _ in 0..2 {
                    sqlite.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
                }
            }
        }
    }
    // The earlier triggers count inserts, changes of status and time, and deletions.
    repository.upsert(&round(1)).unwrap();
    repository.upsert(&round(2)).unwrap();
    execute_sql(
        &repository,
        "DELETE FROM backup_items WHERE project_id = 't0' AND created_at_us < 0",
    );
    // Today's counts also ask whether an initial load is pending, in a table the older
    // schema lacks: an empty stand-in while the older triggers' counters are read.
    let bookkeeping = "deferred_for_initial_load (name TEXT PRIMARY KEY, kind TEXT NOT NULL, \
                       definition TEXT NOT NULL)";
    execute_sql(&repository, &format!("CREATE TABLE {bookkeeping}"));
    exact("after reverting", false);
    execute_sql(&repository, "DROP TABLE deferred_for_initial_load");
    assert_eq!(repository.migrate().unwrap(), 2, "{db:?}");
    assert_eq!(repository.check_counters().unwrap(), vec![], "{db:?}");
    repository.upsert(&round(3)).unwrap();
    exact("after migrating up again", true);
    assert_eq!(repository.check_counters().unwrap(), vec![], "{db:?}");
}

fn drift_is_reported_and_rebuilt(db: TestDatabase) {
    let repository = db.repository();
    let records: Vec<_> = (0..10)
        .map(|i| record(i % 2, BackupStatus::Available, i as i64 * 30 * 60, None))
        .collect();
    repository.upsert(&records).unwrap();
    assert!(repository.check_counters().unwrap().is_empty());

    execute_sql(&repository, "UPDATE item_counts SET n = n + 5 WHERE project_id = 't0'; DELETE FROM item_counts_daily WHERE project_id = 't1'; UPDATE item_counts_hourly SET n = n - 1 WHERE project_id = 't0'; UPDATE item_dimension_counts SET n = n + 2 WHERE project_id = 't1' AND span = 1; DELETE FROM item_dimension_counts WHERE project_id = 't0' AND span = 3");
    let drift = repository.check_counters().unwrap();
    assert!(
        drift.iter().any(|d| d.project_id == "t0"
            && d.bucket == CounterBucket::Total
            && d.counted == d.actual + 5),
        "{db:?}: {drift:?}"
    );
    assert!(
        drift.iter().any(|d| d.project_id == "t1"
            && matches!(d.bucket, CounterBucket::Day(_))
            && d.counted == 0),
        "{db:?}: {drift:?}"
    );
    assert!(
        drift.iter().any(|d| d.project_id == "t0"
            && matches!(d.bucket, CounterBucket::Hour(_))
            && d.counted == d.actual - 1),
        "{db:?}: {drift:?}"
    );
    let dimensions = Some(CounterDimensions {
        resource_type: "OS::Nova::Server".into(),
        resource_az: "eu-de-01".into(),
        image_type: "backup".into(),
        policy_id: String::new(),
    });
    assert!(
        drift.iter().any(|d| d.project_id == "t1"
            && d.dimensions == dimensions
            && matches!(d.bucket, CounterBucket::Block(_))
            && d.counted == d.actual + 2),
        "{db:?}: {drift:?}"
    );
    assert!(
        drift.iter().any(|d| d.project_id == "t0"
            && d.dimensions == dimensions
            && matches!(d.bucket, CounterBucket::Hour(_))
            && d.counted == 0),
        "{db:?}: {drift:?}"
    );
    // The status counters' drift names no dimensions.
    assert!(
        drift
            .iter()
            .filter(|d| d.bucket == CounterBucket::Total)
            .all(|d| d.dimensions.is_none()),
        "{db:?}: {drift:?}"
    );
    // From 2000-01-01 on: the blocks' counters are summed.
    let since = format_timestamp(946_684_800_000_000);
    let by_zone = filter(
        Some("t1"),
        &pairs(&[("az", "eu-de-01"), ("start_time", since.as_str())]),
    );
    assert_ne!(
        repository.count(&by_zone).unwrap(),
        repository.count_rows(&by_zone).unwrap()
    );
    let everything = filter(Some("t0"), &[]);
    assert_ne!(
        repository.count(&everything).unwrap(),
        repository.count_rows(&everything).unwrap()
    );

    let repaired = repository.rebuild_counters().unwrap();
    assert_eq!(repaired, drift);
    assert!(repository.check_counters().unwrap().is_empty(), "{db:?}");
    assert_eq!(repository.count(&everything).unwrap(), 5);
    assert_eq!(repository.count(&by_zone).unwrap(), 5);
    let _ = Plan::Replay;
}

backend_tests!(
    counter_buckets_are_the_databases,
    counters_are_exact_around_the_epoch,
    counters_equal_row_counts_after_every_step,
    counters_stay_exact_under_concurrent_writers,
    drift_is_reported_and_rebuilt,
    the_counter_migrations_revert_and_reapply,
);
