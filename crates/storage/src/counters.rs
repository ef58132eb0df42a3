//! Counts answered from the trigger-kept counters instead of the rows, when the filter allows
//! it: a tenant (or every tenant), statuses, and a time range. Whole days of a range come from
//! the daily counters; the partial days at its edges are counted from the items' index. The
//! pieces are summed in one statement, which reads one snapshot, so the sum is exact under
//! concurrent writes.

use csbs_domain::{BackupFilter, BackupStatus, Criteria, Micros, TenantScope};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable};

use crate::connection::{DbConnection, MultiBackend};
use crate::filters::filtered;
use crate::prepared::{in_list, static_sql, StaticSql};
use crate::schema::{item_counts, item_counts_daily};
use crate::{Repository, StorageError};

const DAY_MICROS: i64 = 86_400_000_000;

/// Whether the counters can answer this filter: no criterion but statuses and time.
pub(crate) fn counters_apply(criteria: &Criteria) -> bool {
    let Criteria {
        statuses: _,
        names,
        resource_names,
        resource_ids,
        checkpoint_ids,
        resource_types,
        azs,
        image_types,
        policy_ids,
        ips,
        created_from: _,
        created_to: _,
    } = criteria;
    names.is_empty()
        && resource_names.is_empty()
        && resource_ids.is_empty()
        && checkpoint_ids.is_empty()
        && resource_types.is_empty()
        && azs.is_empty()
        && image_types.is_empty()
        && policy_ids.is_empty()
        && ips.is_empty()
}

fn day_of(micros: Micros) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

fn status_texts(criteria: &Criteria) -> Vec<&'static str> {
    criteria
        .effective_statuses()
        .into_iter()
        .map(BackupStatus::as_str)
        .collect()
}

/// `CAST(SUM(n) AS BIGINT)`: PostgreSQL widens a sum of BIGINT to NUMERIC otherwise.
fn sum_n() -> StaticSql<Nullable<BigInt>> {
    static_sql("CAST(SUM(n) AS BIGINT)")
}

type Part<'a> = Box<dyn QueryFragment<MultiBackend> + Send + 'a>;

/// `SELECT COALESCE((part), 0) + …`: the pieces of a count summed by the database in one
/// statement, which both backends answer from one snapshot.
struct SumOf<'a> {
    parts: Vec<Part<'a>>,
}

impl QueryFragment<MultiBackend> for SumOf<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_sql(" + ");
            }
            out.push_sql("COALESCE((");
            part.walk_ast(out.reborrow())?;
            out.push_sql("), 0)");
        }
        Ok(())
    }
}

impl QueryId for SumOf<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for SumOf<'_> {
    type SqlType = BigInt;
}

impl RunQueryDsl<DbConnection> for SumOf<'_> {}

fn total(filter: &BackupFilter) -> Part<'_> {
    let mut query = item_counts::table
        .select(sum_n())
        .filter(in_list(item_counts::status, status_texts(&filter.criteria)))
        .into_boxed();
    if let TenantScope::Project(project) = &filter.scope {
        query = query.filter(item_counts::project_id.eq(project.as_str()));
    }
    Box::new(query)
}

fn whole_days(filter: &BackupFilter, first: Option<i64>, last: Option<i64>) -> Part<'_> {
    let mut query = item_counts_daily::table
        .select(sum_n())
        .filter(in_list(
            item_counts_daily::status,
            status_texts(&filter.criteria),
        ))
        .into_boxed();
    if let TenantScope::Project(project) = &filter.scope {
        query = query.filter(item_counts_daily::project_id.eq(project.as_str()));
    }
    let clamp = |day: i64| i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX });
    if let Some(first) = first {
        query = query.filter(item_counts_daily::day.ge(clamp(first)));
    }
    if let Some(last) = last {
        query = query.filter(item_counts_daily::day.le(clamp(last)));
    }
    Box::new(query)
}

/// The same filter over `[from, to]`: a range whose rows are counted from the index.
fn edge(filter: &BackupFilter, from: Micros, to: Micros) -> BackupFilter {
    BackupFilter {
        scope: filter.scope.clone(),
        criteria: Criteria {
            created_from: Some(from),
            created_to: Some(to),
            ..filter.criteria.clone()
        },
    }
}

/// The count of `filter` from the counters in one statement; the caller has checked
/// [`counters_apply`].
fn counted(conn: &mut DbConnection, filter: &BackupFilter) -> QueryResult<i64> {
    let (from, to) = (filter.criteria.created_from, filter.criteria.created_to);
    if from.is_none() && to.is_none() {
        return SumOf {
            parts: vec![total(filter)],
        }
        .get_result(conn);
    }
    // Days wholly inside the range come from the daily counters.
    let first_whole = from.map(|f| {
        if f.rem_euclid(DAY_MICROS) == 0 {
            day_of(f)
        } else {
            day_of(f) + 1
        }
    });
    let last_whole = to.map(|t| {
        if t.rem_euclid(DAY_MICROS) == DAY_MICROS - 1 {
            day_of(t)
        } else {
            day_of(t) - 1
        }
    });
    if let (Some(first), Some(last)) = (first_whole, last_whole) {
        if first > last {
            // No whole day: the range lies within a day or two; count its rows.
            return filtered(filter).count().get_result(conn);
        }
    }
    let mut edges = Vec::new();
    if let (Some(from), Some(first)) = (from, first_whole) {
        let day_start = first.saturating_mul(DAY_MICROS);
        if from < day_start {
            edges.push(edge(filter, from, day_start - 1));
        }
    }
    if let (Some(to), Some(last)) = (to, last_whole) {
        let day_after = last.saturating_add(1).saturating_mul(DAY_MICROS);
        if to >= day_after {
            edges.push(edge(filter, day_after, to));
        }
    }
    let mut parts = vec![whole_days(filter, first_whole, last_whole)];
    parts.extend(
        edges
            .iter()
            .map(|e| Box::new(filtered(e).count()) as Part<'_>),
    );
    SumOf { parts }.get_result(conn)
}

/// Runs `work` in one read-only snapshot (a transaction; REPEATABLE READ on PostgreSQL), so
/// that several queries see the same writes.
fn in_snapshot<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    conn.transaction(|conn| {
        if let DbConnection::Postgresql(pg) = conn {
            pg.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        work(conn)
    })
}

/// One counter that disagrees with the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDrift {
    pub project_id: String,
    pub status: String,
    /// The UTC day (days since the epoch) for daily counters; `None` for the tenant totals.
    pub day: Option<i32>,
    /// What the counter says.
    pub counted: i64,
    /// What the rows say.
    pub actual: i64,
}

impl Repository {
    /// How many items `filter` selects, from the counters when the filter allows it.
    pub fn count(&self, filter: &BackupFilter) -> Result<u64, StorageError> {
        let mut conn = self.connection()?;
        // Either path is one statement, and one statement reads one snapshot on both
        // backends: no transaction (and none of its round trips) is needed for exactness.
        let count = if counters_apply(&filter.criteria) {
            counted(&mut conn, filter)?
        } else {
            filtered(filter).count().get_result(&mut *conn)?
        };
        u64::try_from(count).map_err(|_| StorageError::CorruptRow("negative count".into()))
    }

    /// How many items `filter` selects, counted from the rows whatever the filter: the
    /// reference the counters are checked against.
    pub fn count_rows(&self, filter: &BackupFilter) -> Result<u64, StorageError> {
        let mut conn = self.connection()?;
        let count: i64 = filtered(filter).count().get_result(&mut *conn)?;
        u64::try_from(count).map_err(|_| StorageError::CorruptRow("negative count".into()))
    }

    /// Every counter that disagrees with the rows (an empty list when all agree).
    pub fn check_counters(&self) -> Result<Vec<CounterDrift>, StorageError> {
        let mut conn = self.connection()?;
        Ok(in_snapshot(&mut conn, drift)?)
    }

    /// Recomputes every counter from the rows, with writers held off meanwhile; returns the
    /// drift that was repaired.
    pub fn rebuild_counters(&self) -> Result<Vec<CounterDrift>, StorageError> {
        let mut pooled = self.connection()?;
        let conn: &mut DbConnection = &mut pooled;
        Ok(conn.transaction(|conn| {
            if let DbConnection::Postgresql(pg) = conn {
                // Writers wait; readers go on. SQLite's write transaction already excludes writers.
                pg.batch_execute("LOCK TABLE backup_items IN SHARE MODE")?;
            }
            let repaired = drift(conn)?;
            diesel::delete(item_counts_daily::table).execute(conn)?;
            diesel::delete(item_counts::table).execute(conn)?;
            conn.batch_execute(&format!(
                "INSERT INTO item_counts_daily (project_id, status, day, n) \
                 SELECT project_id, status, {DAY_SQL}, count(*) FROM backup_items GROUP BY 1, 2, 3; \
                 INSERT INTO item_counts (project_id, status, n) \
                 SELECT project_id, status, count(*) FROM backup_items GROUP BY 1, 2;"
            ))?;
            Ok::<_, diesel::result::Error>(repaired)
        })?)
    }
}

/// The UTC day of `created_at_us` in SQL, rounding down for times before the epoch too.
const DAY_SQL: &str = "CAST((created_at_us - (((created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000 AS INTEGER)";

/// A row of the daily count of the items themselves.
#[derive(QueryableByName)]
struct DailyCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    project_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    day: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn drift(conn: &mut DbConnection) -> QueryResult<Vec<CounterDrift>> {
    use std::collections::BTreeMap;
    let counted_daily: Vec<(String, String, i32, i64)> = item_counts_daily::table
        .select((
            item_counts_daily::project_id,
            item_counts_daily::status,
            item_counts_daily::day,
            item_counts_daily::n,
        ))
        .load(conn)?;
    let actual_daily: Vec<DailyCount> = diesel::sql_query(format!(
        "SELECT project_id, status, {DAY_SQL} AS day, count(*) AS n FROM backup_items GROUP BY 1, 2, 3"
    ))
    .load(conn)?;
    let mut daily: BTreeMap<(String, String, Option<i32>), (i64, i64)> = BTreeMap::new();
    let mut totals: BTreeMap<(String, String, Option<i32>), (i64, i64)> = BTreeMap::new();
    for (project, status, day, n) in counted_daily {
        daily.entry((project, status, Some(day))).or_default().0 += n;
    }
    for DailyCount {
        project_id: project,
        status,
        day,
        n,
    } in actual_daily
    {
        daily
            .entry((project.clone(), status.clone(), Some(day)))
            .or_default()
            .1 += n;
        totals.entry((project, status, None)).or_default().1 += n;
    }
    let counted_totals: Vec<(String, String, i64)> = item_counts::table
        .select((item_counts::project_id, item_counts::status, item_counts::n))
        .load(conn)?;
    for (project, status, n) in counted_totals {
        totals.entry((project, status, None)).or_default().0 += n;
    }
    Ok(daily
        .into_iter()
        .chain(totals)
        .filter(|(_, (counted, actual))| counted != actual)
        .map(
            |((project_id, status, day), (counted, actual))| CounterDrift {
                project_id,
                status,
                day,
                counted,
                actual,
            },
        )
        .collect())
}
