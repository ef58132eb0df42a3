//! Counts answered from the trigger-kept counters instead of the rows, when the filter allows
//! it: a tenant (or every tenant), statuses, and a time range. Whole days of a range come from
//! the daily counters; for one tenant, the whole hours of the partial days at its ends from the
//! hourly counters, and the partial hours from the items' index (across tenants, the partial
//! days from the index). The pieces are summed in one statement, which reads one snapshot, so
//! the sum is exact under concurrent writes.

use std::borrow::Cow;

use csbs_domain::{BackupFilter, Criteria, FilterParam, Micros, TenantScope};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable};

use crate::connection::{DbConnection, MultiBackend};
use crate::schema::{item_counts, item_counts_daily, item_counts_hourly};
use crate::sql::filters::filtered;
use crate::sql::prepared::{any_of, static_sql, Comparison, StaticSql};

const DAY_MICROS: i64 = 86_400_000_000;
const HOUR_MICROS: i64 = 3_600_000_000;

/// Whether the counters can answer this filter: no criterion but statuses and time.
pub(crate) fn counters_apply(criteria: &Criteria) -> bool {
    FilterParam::ALL.into_iter().all(|param| match param {
        // What the counters are kept by.
        FilterParam::Status | FilterParam::StartTime | FilterParam::EndTime => true,
        // The scope is the counters' key; `dec` selects nothing.
        FilterParam::AllTenants | FilterParam::Dec => true,
        FilterParam::Name => criteria.names.is_empty(),
        FilterParam::ResourceName => criteria.resource_names.is_empty(),
        FilterParam::ResourceId => criteria.resource_ids.is_empty(),
        FilterParam::CheckpointId => criteria.checkpoint_ids.is_empty(),
        FilterParam::ResourceType => criteria.resource_types.is_empty(),
        FilterParam::Az => criteria.azs.is_empty(),
        FilterParam::ImageType => criteria.image_types.is_empty(),
        FilterParam::PolicyId => criteria.policy_ids.is_empty(),
        FilterParam::Ip => criteria.ips.is_empty(),
    })
}

fn status_texts(criteria: &Criteria) -> Vec<Cow<'static, str>> {
    criteria
        .effective_statuses()
        .into_iter()
        .map(|status| Cow::Borrowed(status.as_str()))
        .collect()
}

/// `CAST(SUM(n) AS BIGINT)`: PostgreSQL widens a sum of BIGINT to NUMERIC otherwise.
fn sum_n() -> StaticSql<Nullable<BigInt>> {
    static_sql("CAST(SUM(n) AS BIGINT)")
}

type Part<'a> = Box<dyn QueryFragment<MultiBackend> + Send + 'a>;

/// `SELECT COALESCE((part), 0) + …`: the pieces of a count summed by the database in one
/// statement, which both backends answer from one snapshot.
pub(crate) struct SumOf<'a> {
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
        .filter(any_of(
            item_counts::status,
            Comparison::Equals,
            status_texts(&filter.criteria),
        ))
        .into_boxed();
    if let TenantScope::Project(project) = &filter.scope {
        query = query.filter(item_counts::project_id.eq(project.as_str()));
    }
    Box::new(query)
}

/// A bucket number as the counters store it (an `INTEGER` column). Times are limited to the
/// years 1 to 9999 (about ±7·10⁷ hours), far inside its range; the clamp only spares a
/// conversion that cannot fail an error path.
fn clamp_bucket(bucket: i64) -> i32 {
    i32::try_from(bucket).unwrap_or(if bucket < 0 { i32::MIN } else { i32::MAX })
}

/// The sum of one bucketed counter table (daily or hourly) over `[first, last]` buckets.
macro_rules! bucket_sum {
    ($table:ident, $bucket:ident, $filter:expr, $first:expr, $last:expr) => {{
        let filter: &BackupFilter = $filter;
        let mut query = $table::table
            .select(sum_n())
            .filter(any_of(
                $table::status,
                Comparison::Equals,
                status_texts(&filter.criteria),
            ))
            .into_boxed();
        if let TenantScope::Project(project) = &filter.scope {
            query = query.filter($table::project_id.eq(project.as_str()));
        }
        if let Some(first) = $first {
            query = query.filter($table::$bucket.ge(clamp_bucket(first)));
        }
        if let Some(last) = $last {
            query = query.filter($table::$bucket.le(clamp_bucket(last)));
        }
        Box::new(query) as Part<'_>
    }};
}

fn whole_days(filter: &BackupFilter, first: Option<i64>, last: Option<i64>) -> Part<'_> {
    bucket_sum!(item_counts_daily, day, filter, first, last)
}

fn whole_hours(filter: &BackupFilter, first: Option<i64>, last: Option<i64>) -> Part<'_> {
    bucket_sum!(item_counts_hourly, hour, filter, first, last)
}

/// The same filter over `[from, to]`: a range whose rows are counted from the index.
///
/// The statuses are spelled out even when the caller gave none ("every status but deleted"):
/// `status IN (…)` bounds a scan of the (tenant, status, created) index, so the edge is
/// counted from the index alone, where `status <> 'deleted'` would visit the table for each of
/// the edge's rows (thousands a day for a large tenant).
fn edge(filter: &BackupFilter, from: Micros, to: Micros) -> BackupFilter {
    BackupFilter {
        scope: filter.scope.clone(),
        criteria: Criteria {
            statuses: filter.criteria.effective_statuses(),
            created_from: Some(from),
            created_to: Some(to),
            ..filter.criteria.clone()
        },
    }
}

/// Whole units (days or hours) inside `[from, to]`, and the pieces of the range outside them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    /// The first and last whole unit (`None`: unbounded on that side); `None` when the range
    /// holds no whole unit.
    whole: Option<(Option<i64>, Option<i64>)>,
    /// The rest of the range, as inclusive `[from, to]` pieces.
    rest: Vec<(Micros, Micros)>,
}

/// The bucket (hour or day) holding `t`: the Rust side of the buckets the counter-buckets
/// migration defines in SQL, held to them by `counter_buckets_are_the_databases` (the tests of
/// the counters).
fn bucket_of(t: Micros, unit: i64) -> i64 {
    t.div_euclid(unit)
}

fn split(from: Option<Micros>, to: Option<Micros>, unit: i64) -> Split {
    let first = from.map(|f| {
        if f.rem_euclid(unit) == 0 {
            bucket_of(f, unit)
        } else {
            bucket_of(f, unit) + 1
        }
    });
    let last = to.map(|t| {
        if t.rem_euclid(unit) == unit - 1 {
            bucket_of(t, unit)
        } else {
            bucket_of(t, unit) - 1
        }
    });
    if let (Some(from), Some(to), Some(first), Some(last)) = (from, to, first, last) {
        if first > last {
            return Split {
                whole: None,
                rest: vec![(from, to)],
            };
        }
    }
    let mut rest = Vec::new();
    if let (Some(from), Some(first)) = (from, first) {
        let start = first.saturating_mul(unit);
        if from < start {
            rest.push((from, start - 1));
        }
    }
    if let (Some(to), Some(last)) = (to, last) {
        let after = last.saturating_add(1).saturating_mul(unit);
        if to >= after {
            rest.push((after, to));
        }
    }
    Split {
        whole: Some((first, last)),
        rest,
    }
}

/// Builds the one statement that counts `filter` from the counters and hands it to `run`; the
/// caller has checked [`counters_apply`].
///
/// A time range is cut into whole days (daily counters), then, for one tenant, the whole hours
/// of the partial days at its ends (hourly counters), and what remains (less than an hour at
/// each end for a tenant, less than a day across tenants) is counted from the items' index.
/// Across tenants the hourly counters would be summed over every tenant's rows for those
/// hours, which is no cheaper than the index; they are kept per tenant only.
pub(crate) fn with_counter_statement<R>(
    filter: &BackupFilter,
    run: impl FnOnce(SumOf<'_>) -> R,
) -> R {
    let (from, to) = (filter.criteria.created_from, filter.criteria.created_to);
    if from.is_none() && to.is_none() {
        return run(SumOf {
            parts: vec![total(filter)],
        });
    }
    let days = split(from, to, DAY_MICROS);
    let mut hour_ranges = Vec::new();
    let mut row_ranges = Vec::new();
    for &(from, to) in &days.rest {
        if matches!(filter.scope, TenantScope::Project(_)) {
            let hours = split(Some(from), Some(to), HOUR_MICROS);
            hour_ranges.extend(hours.whole);
            row_ranges.extend(hours.rest);
        } else {
            row_ranges.push((from, to));
        }
    }
    let edges: Vec<BackupFilter> = row_ranges
        .iter()
        .map(|&(from, to)| edge(filter, from, to))
        .collect();
    let mut parts = Vec::with_capacity(1 + hour_ranges.len() + edges.len());
    if let Some((first, last)) = days.whole {
        parts.push(whole_days(filter, first, last));
    }
    parts.extend(
        hour_ranges
            .into_iter()
            .map(|(first, last)| whole_hours(filter, first, last)),
    );
    parts.extend(
        edges
            .iter()
            .map(|e| Box::new(filtered(e).count()) as Part<'_>),
    );
    run(SumOf { parts })
}

/// Runs `work` in one read-only transaction (REPEATABLE READ on PostgreSQL), without the
/// statement timeout meant for the service's reads: a check counts every row.
pub(crate) fn in_snapshot<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    conn.transaction(|conn| {
        if let DbConnection::Postgresql(pg) = conn {
            pg.batch_execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                 SET LOCAL statement_timeout = 0",
            )?;
        }
        work(conn)
    })
}

/// Which counter of a tenant and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CounterBucket {
    /// The tenant's total in that status.
    Total,
    /// One UTC day (days since the epoch).
    Day(i32),
    /// One UTC hour (hours since the epoch).
    Hour(i32),
}

impl CounterBucket {
    /// The UTC hour that holds `t`.
    pub fn hour_of(t: Micros) -> Self {
        Self::Hour(clamp_bucket(bucket_of(t, HOUR_MICROS)))
    }

    /// The UTC day that holds `t`.
    pub fn day_of(t: Micros) -> Self {
        Self::Day(clamp_bucket(bucket_of(t, DAY_MICROS)))
    }
}

impl std::fmt::Display for CounterBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = |bucket: i32, unit: i64| {
            csbs_domain::format_timestamp(i64::from(bucket).saturating_mul(unit))
        };
        match *self {
            Self::Total => f.write_str("total"),
            Self::Day(day) => write!(f, "day {day} (from {})", start(day, DAY_MICROS)),
            Self::Hour(hour) => write!(f, "hour {hour} (from {})", start(hour, HOUR_MICROS)),
        }
    }
}

/// One counter that disagrees with the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDrift {
    pub project_id: String,
    pub status: String,
    pub bucket: CounterBucket,
    /// What the counter says.
    pub counted: i64,
    /// What the rows say.
    pub actual: i64,
}

/// An item's counter buckets in SQL, as the counter-buckets migration defines them for each
/// backend: PostgreSQL functions (inlined by its planner), SQLite virtual columns.
struct BucketSql {
    hour: &'static str,
    day: &'static str,
}

fn bucket_sql(conn: &DbConnection) -> BucketSql {
    match conn {
        DbConnection::Postgresql(_) => BucketSql {
            hour: "csbs_hour(created_at_us)",
            day: "csbs_day(created_at_us)",
        },
        DbConnection::Sqlite(_) => BucketSql {
            hour: "created_hour",
            day: "created_day",
        },
    }
}

/// Recomputes every counter from the rows; the caller has emptied them and holds writers off.
pub(crate) fn refill(conn: &mut DbConnection) -> QueryResult<()> {
    let BucketSql { hour, day } = bucket_sql(conn);
    conn.batch_execute(&format!(
        "INSERT INTO item_counts_hourly (project_id, status, hour, n) \
         SELECT project_id, status, {hour}, count(*) FROM backup_items GROUP BY 1, 2, 3; \
         INSERT INTO item_counts_daily (project_id, status, day, n) \
         SELECT project_id, status, {day}, count(*) FROM backup_items GROUP BY 1, 2, 3; \
         INSERT INTO item_counts (project_id, status, n) \
         SELECT project_id, status, count(*) FROM backup_items GROUP BY 1, 2;"
    ))
}

/// A counter whose value differs from the rows' count, as the database reports it.
#[derive(QueryableByName)]
struct DriftRow {
    /// 0: hourly, 1: daily, 2: total.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    kind: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    project_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    bucket: Option<i32>,
    #[diesel(sql_type = BigInt)]
    counted: i64,
    #[diesel(sql_type = BigInt)]
    actual: i64,
}

/// Every counter that differs from the rows' own count, compared by the database in one
/// statement: the rows are read once (grouped by hour, from which days and totals follow), and
/// only the differences leave the database, however many counters there are (millions of
/// hours at scale).
///
/// Each side may lack a key the other has (a counter left at zero, or rows with no counter):
/// the sums over the union of both sides compare them all.
pub(crate) fn drift(conn: &mut DbConnection) -> QueryResult<Vec<CounterDrift>> {
    let BucketSql { hour, day } = bucket_sql(conn);
    let rows: Vec<DriftRow> = diesel::sql_query(format!(
        "WITH actual AS ( \
             SELECT project_id, status, {hour} AS hour, {day} AS day, count(*) AS n \
             FROM backup_items GROUP BY 1, 2, 3, 4) \
         SELECT kind, project_id, status, bucket, \
                CAST(SUM(counted) AS BIGINT) AS counted, CAST(SUM(actual) AS BIGINT) AS actual \
         FROM ( \
             SELECT 0 AS kind, project_id, status, hour AS bucket, n AS counted, \
                    CAST(0 AS BIGINT) AS actual FROM item_counts_hourly \
             UNION ALL SELECT 0, project_id, status, hour, 0, n FROM actual \
             UNION ALL SELECT 1, project_id, status, day, n, 0 FROM item_counts_daily \
             UNION ALL SELECT 1, project_id, status, day, 0, n FROM actual \
             UNION ALL SELECT 2, project_id, status, NULL, n, 0 FROM item_counts \
             UNION ALL SELECT 2, project_id, status, NULL, 0, n FROM actual \
         ) AS sides \
         GROUP BY kind, project_id, status, bucket \
         HAVING SUM(counted) <> SUM(actual) \
         ORDER BY kind, project_id, status, bucket"
    ))
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| CounterDrift {
            bucket: match (row.kind, row.bucket) {
                (0, Some(hour)) => CounterBucket::Hour(hour),
                (1, Some(day)) => CounterBucket::Day(day),
                _ => CounterBucket::Total,
            },
            project_id: row.project_id,
            status: row.status,
            counted: row.counted,
            actual: row.actual,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MICROS;

    #[test]
    fn a_range_splits_into_whole_units_and_the_rest() {
        // Aligned on both ends: whole units only.
        assert_eq!(
            split(Some(2 * H), Some(5 * H - 1), H),
            Split {
                whole: Some((Some(2), Some(4))),
                rest: vec![]
            }
        );
        // Partial units at both ends.
        assert_eq!(
            split(Some(2 * H + 5), Some(5 * H + 7), H),
            Split {
                whole: Some((Some(3), Some(4))),
                rest: vec![(2 * H + 5, 3 * H - 1), (5 * H, 5 * H + 7)]
            }
        );
        // Within one unit, or straddling one boundary: no whole unit.
        assert_eq!(
            split(Some(2 * H + 5), Some(2 * H + 9), H),
            Split {
                whole: None,
                rest: vec![(2 * H + 5, 2 * H + 9)]
            }
        );
        assert_eq!(
            split(Some(2 * H + 5), Some(3 * H + 9), H),
            Split {
                whole: None,
                rest: vec![(2 * H + 5, 3 * H + 9)]
            }
        );
        // Open ends, and times before the epoch, which round down.
        assert_eq!(
            split(None, Some(-H - 1), H),
            Split {
                whole: Some((None, Some(-2))),
                rest: vec![]
            }
        );
        assert_eq!(
            split(None, Some(-H - 5), H),
            Split {
                whole: Some((None, Some(-3))),
                rest: vec![(-2 * H, -H - 5)]
            }
        );
        assert_eq!(
            split(Some(-H + 1), None, H),
            Split {
                whole: Some((Some(0), None)),
                rest: vec![(-H + 1, -1)]
            }
        );
    }
}
