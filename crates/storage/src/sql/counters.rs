//! Counts answered from the trigger-kept counters instead of the rows, when the filter allows
//! it: a tenant (or every tenant), statuses, a time range, and the low-cardinality dimensions
//! (resource type, zone, image type, policy).
//!
//! Two families of counters serve them. The status counters (per tenant and status: total,
//! daily, hourly) answer a filter of statuses and time alone: whole days of a range come from
//! the daily counters; for one tenant, the whole hours of the partial days at its ends from the
//! hourly counters, and the partial hours from the items' index (across tenants, the partial
//! days from the index). The dimension counters (per tenant, status and combination of
//! dimensions, in spans of all time, 32-day blocks, days and hours) answer a filter that names
//! a dimension: the whole blocks of a range, then the whole days and whole hours at its ends,
//! and the partial hours from the items. The pieces are summed in one statement, which reads
//! one snapshot, so the sum is exact under concurrent writes.

use std::borrow::Cow;

use csbs_domain::{BackupFilter, Criteria, FilterParam, Micros, TenantScope};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::connection::{DbConnection, MultiBackend};
use crate::schema::{item_counts, item_counts_daily, item_counts_hourly, item_dimension_counts};
use crate::sql::filters::{filtered, texts};
use crate::sql::prepared::{any_of, static_sql, AnyOf, Comparison, StaticSql};

const DAY_MICROS: i64 = 86_400_000_000;
const HOUR_MICROS: i64 = 3_600_000_000;
/// The dimension counters' longest unit: 32 days.
const BLOCK_MICROS: i64 = 32 * DAY_MICROS;

/// The counters that can answer a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counters {
    /// Per tenant and status: the filter has statuses and time at most.
    Status,
    /// Per tenant, status and combination of dimensions: the filter names a dimension too.
    Dimensions,
}

/// Which counters can answer this filter, if any: none when it has a criterion the counters
/// are not kept by (a substring, an id, an address).
pub(crate) fn counters_for(criteria: &Criteria) -> Option<Counters> {
    let mut dimensions = false;
    for param in FilterParam::ALL {
        let counted = match param {
            // What both families are kept by.
            FilterParam::Status | FilterParam::StartTime | FilterParam::EndTime => true,
            // The scope is the counters' key; `dec` selects nothing.
            FilterParam::AllTenants | FilterParam::Dec => true,
            // What the dimension counters are kept by.
            FilterParam::ResourceType => {
                dimensions |= !criteria.resource_types.is_empty();
                true
            }
            FilterParam::Az => {
                dimensions |= !criteria.azs.is_empty();
                true
            }
            FilterParam::ImageType => {
                dimensions |= !criteria.image_types.is_empty();
                true
            }
            FilterParam::PolicyId => {
                dimensions |= !criteria.policy_ids.is_empty();
                true
            }
            FilterParam::Name => criteria.names.is_empty(),
            FilterParam::ResourceName => criteria.resource_names.is_empty(),
            FilterParam::ResourceId => criteria.resource_ids.is_empty(),
            FilterParam::CheckpointId => criteria.checkpoint_ids.is_empty(),
            FilterParam::Ip => criteria.ips.is_empty(),
        };
        if !counted {
            return None;
        }
    }
    Some(if dimensions {
        Counters::Dimensions
    } else {
        Counters::Status
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

/// What a counter statement answers while an initial load has not finished: the counters are
/// not made yet (`repository/initial_load.rs`), and a count must not be read from them.
pub(crate) const INITIAL_LOAD_PENDING: i64 = -1;

impl QueryFragment<MultiBackend> for SumOf<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // One probe of an empty table's key: no second round trip.
        out.push_sql(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM deferred_for_initial_load) THEN -1 ELSE ",
        );
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_sql(" + ");
            }
            out.push_sql("COALESCE((");
            part.walk_ast(out.reborrow())?;
            out.push_sql("), 0)");
        }
        out.push_sql(" END");
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

/// A span of the dimension counters, as their `span` column numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    AllTime = 0,
    Block = 1,
    Day = 2,
    Hour = 3,
}

/// The sum of the dimension counters of one span over `[first, last]` buckets (all time: the
/// one bucket), for the filter's statuses and dimensions. The conditions follow the key's
/// order, so that the database reads one range of its index per status.
fn dimension_sum(
    filter: &BackupFilter,
    span: Span,
    first: Option<i64>,
    last: Option<i64>,
) -> Part<'_> {
    use item_dimension_counts as counts;
    let criteria = &filter.criteria;
    let mut query = counts::table.select(sum_n()).into_boxed();
    query = match &filter.scope {
        TenantScope::Project(project) => query
            .filter(counts::project_id.eq(project.as_str()))
            .filter(any_of(
                counts::status,
                Comparison::Equals,
                status_texts(criteria),
            )),
        // Per row of the status counters (see `PerTenant`).
        TenantScope::AllTenants => query
            .filter(counts::project_id.eq(static_sql::<Text>("item_counts.project_id")))
            .filter(counts::status.eq(static_sql::<Text>("item_counts.status"))),
    };
    query = query.filter(counts::span.eq(span as i16));
    if let Some(first) = first {
        query = query.filter(counts::bucket.ge(clamp_bucket(first)));
    }
    if let Some(last) = last {
        query = query.filter(counts::bucket.le(clamp_bucket(last)));
    }
    macro_rules! narrowed_by {
        ($values:expr, $column:expr) => {
            if !$values.is_empty() {
                query = query.filter(any_of($column, Comparison::Equals, texts($values)));
            }
        };
    }
    narrowed_by!(&criteria.resource_types, counts::resource_type);
    narrowed_by!(&criteria.azs, counts::resource_az);
    narrowed_by!(&criteria.image_types, counts::image_type);
    narrowed_by!(&criteria.policy_ids, counts::policy_id);
    match filter.scope {
        TenantScope::Project(_) => Box::new(query),
        TenantScope::AllTenants => Box::new(PerTenant {
            sum: Box::new(query),
            statuses: any_of(
                item_counts::status,
                Comparison::Equals,
                status_texts(criteria),
            ),
        }),
    }
}

/// A dimension counters' sum across tenants, taken tenant by tenant and status by status:
/// `sum` (which names `item_counts.project_id` and `item_counts.status`) for each row of the
/// status counters in the asked statuses, added up.
///
/// Every tenant and status that has dimension counters has a status counter too (the same
/// triggers keep both, a rebuild refills both), so nothing is missed. Each step probes the
/// key of the dimension counters by its first two columns, as a skip scan would; a second
/// index starting with the status would serve the same sum but make every write dearer, and
/// a plain `project_id IN (…)` leaves the planner free to walk the whole key instead.
struct PerTenant<'a> {
    sum: Part<'a>,
    statuses: AnyOf<'a, item_counts::status>,
}

impl QueryFragment<MultiBackend> for PerTenant<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("SELECT CAST(SUM(per_tenant.n) AS BIGINT) FROM (SELECT (");
        self.sum.walk_ast(out.reborrow())?;
        out.push_sql(") AS n FROM item_counts WHERE ");
        self.statuses.walk_ast(out.reborrow())?;
        out.push_sql(") AS per_tenant");
        Ok(())
    }
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

/// Builds the one statement that counts `filter` from `counters` and hands it to `run`; the
/// caller has chosen `counters` with [`counters_for`].
pub(crate) fn with_counter_statement<R>(
    filter: &BackupFilter,
    counters: Counters,
    run: impl FnOnce(SumOf<'_>) -> R,
) -> R {
    let (from, to) = (filter.criteria.created_from, filter.criteria.created_to);
    if from.is_none() && to.is_none() {
        return run(SumOf {
            parts: vec![match counters {
                Counters::Status => total(filter),
                Counters::Dimensions => dimension_sum(filter, Span::AllTime, None, None),
            }],
        });
    }
    let pieces = match counters {
        Counters::Status => status_pieces(filter, from, to),
        Counters::Dimensions => dimension_pieces(from, to),
    };
    let edges: Vec<BackupFilter> = pieces
        .rows
        .iter()
        .map(|&(from, to)| edge(filter, from, to))
        .collect();
    let mut parts = Vec::with_capacity(pieces.sums.len() + edges.len());
    parts.extend(
        pieces
            .sums
            .into_iter()
            .map(|(span, first, last)| match (counters, span) {
                (Counters::Status, Span::Day) => whole_days(filter, first, last),
                (Counters::Status, _) => whole_hours(filter, first, last),
                (Counters::Dimensions, span) => dimension_sum(filter, span, first, last),
            }),
    );
    parts.extend(
        edges
            .iter()
            .map(|e| Box::new(filtered(e).count()) as Part<'_>),
    );
    run(SumOf { parts })
}

/// A time range cut into sums of counters and the ranges counted from the rows.
struct Pieces {
    /// `(span, first bucket, last bucket)`: the whole buckets summed from the counters.
    sums: Vec<(Span, Option<i64>, Option<i64>)>,
    /// The rest, as inclusive `[from, to]` ranges.
    rows: Vec<(Micros, Micros)>,
}

/// The status counters' pieces: whole days, then, for one tenant, the whole hours of the
/// partial days at its ends; what remains (less than an hour at each end for a tenant, less
/// than a day across tenants) is counted from the items' index, from the index alone. Across
/// tenants the hourly counters would be summed over every tenant's rows for those hours, which
/// is no cheaper than the index; they are kept per tenant only.
fn status_pieces(filter: &BackupFilter, from: Option<Micros>, to: Option<Micros>) -> Pieces {
    let days = split(from, to, DAY_MICROS);
    let mut pieces = Pieces {
        sums: days
            .whole
            .map(|(first, last)| (Span::Day, first, last))
            .into_iter()
            .collect(),
        rows: Vec::new(),
    };
    for &(from, to) in &days.rest {
        if matches!(filter.scope, TenantScope::Project(_)) {
            let hours = split(Some(from), Some(to), HOUR_MICROS);
            pieces
                .sums
                .extend(hours.whole.map(|(first, last)| (Span::Hour, first, last)));
            pieces.rows.extend(hours.rest);
        } else {
            pieces.rows.push((from, to));
        }
    }
    pieces
}

/// The dimension counters' pieces: whole 32-day blocks, then the whole days of the partial
/// blocks at its ends, then the whole hours of the partial days; the partial hours are counted
/// from the items. The same for one tenant or all: a dimension filter reads the items' rows
/// (not only an index) at the edges, so the hours are worth summing across tenants too.
fn dimension_pieces(from: Option<Micros>, to: Option<Micros>) -> Pieces {
    let mut pieces = Pieces {
        sums: Vec::new(),
        rows: vec![],
    };
    let mut ranges = vec![(from, to)];
    for (span, unit) in [
        (Span::Block, BLOCK_MICROS),
        (Span::Day, DAY_MICROS),
        (Span::Hour, HOUR_MICROS),
    ] {
        let mut rest = Vec::new();
        for (from, to) in ranges {
            let cut = split(from, to, unit);
            pieces
                .sums
                .extend(cut.whole.map(|(first, last)| (span, first, last)));
            rest.extend(cut.rest.into_iter().map(|(f, t)| (Some(f), Some(t))));
        }
        ranges = rest;
    }
    pieces.rows = ranges
        .into_iter()
        .filter_map(|(from, to)| Some((from?, to?)))
        .collect();
    pieces
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
    /// One 32-day block (blocks since the epoch).
    Block(i32),
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

    /// The 32-day block that holds `t`.
    pub fn block_of(t: Micros) -> Self {
        Self::Block(clamp_bucket(bucket_of(t, BLOCK_MICROS)))
    }
}

impl std::fmt::Display for CounterBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = |bucket: i32, unit: i64| {
            csbs_domain::format_timestamp(i64::from(bucket).saturating_mul(unit))
        };
        match *self {
            Self::Total => f.write_str("total"),
            Self::Block(block) => {
                write!(f, "32 days {block} (from {})", start(block, BLOCK_MICROS))
            }
            Self::Day(day) => write!(f, "day {day} (from {})", start(day, DAY_MICROS)),
            Self::Hour(hour) => write!(f, "hour {hour} (from {})", start(hour, HOUR_MICROS)),
        }
    }
}

/// The combination of dimensions a dimension counter is kept for (a missing value as `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDimensions {
    pub resource_type: String,
    pub resource_az: String,
    pub image_type: String,
    pub policy_id: String,
}

impl std::fmt::Display for CounterDimensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resource_type={:?} az={:?} image_type={:?} policy_id={:?}",
            self.resource_type, self.resource_az, self.image_type, self.policy_id
        )
    }
}

/// One counter that disagrees with the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDrift {
    pub project_id: String,
    pub status: String,
    /// `None` for the status counters; the combination for a dimension counter.
    pub dimensions: Option<CounterDimensions>,
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
    block: &'static str,
}

fn bucket_sql(conn: &DbConnection) -> BucketSql {
    match conn {
        DbConnection::Postgresql(_) => BucketSql {
            hour: "csbs_hour(created_at_us)",
            day: "csbs_day(created_at_us)",
            block: "csbs_block_of_day(csbs_day(created_at_us))",
        },
        DbConnection::Sqlite(_) => BucketSql {
            hour: "created_hour",
            day: "created_day",
            block: "created_block",
        },
    }
}

/// The dimension columns of an item as the dimension counters key them: a missing value as ''.
const ITEM_DIMENSIONS: &str = "resource_type, coalesce(resource_az, '') AS resource_az, \
     coalesce(image_type, '') AS image_type, coalesce(policy_id, '') AS policy_id";

/// Recomputes every counter from the rows: empties them, reads the rows once, grouped by hour
/// and dimensions, and every counter follows from those groups. The caller holds writers off.
pub(crate) fn refill(conn: &mut DbConnection) -> QueryResult<()> {
    diesel::delete(item_dimension_counts::table).execute(conn)?;
    diesel::delete(item_counts_hourly::table).execute(conn)?;
    diesel::delete(item_counts_daily::table).execute(conn)?;
    diesel::delete(item_counts::table).execute(conn)?;
    let BucketSql { hour, day, block } = bucket_sql(conn);
    if let DbConnection::Postgresql(pg) = conn {
        // Grouping every row (a million at 1M items) in memory rather than in sorted runs on
        // disk: at 1M items the counting takes 19 s instead of 25.
        pg.batch_execute("SET LOCAL work_mem = '256MB'")?;
    }
    conn.batch_execute(&format!(
        "CREATE TEMPORARY TABLE counted_hours AS \
         SELECT project_id, status, {ITEM_DIMENSIONS}, {hour} AS hour, {day} AS day, \
                {block} AS block, count(*) AS n \
         FROM backup_items GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9; \
         INSERT INTO item_counts_hourly (project_id, status, hour, n) \
         SELECT project_id, status, hour, sum(n) FROM counted_hours GROUP BY 1, 2, 3; \
         INSERT INTO item_counts_daily (project_id, status, day, n) \
         SELECT project_id, status, day, sum(n) FROM counted_hours GROUP BY 1, 2, 3; \
         INSERT INTO item_counts (project_id, status, n) \
         SELECT project_id, status, sum(n) FROM counted_hours GROUP BY 1, 2; \
         INSERT INTO item_dimension_counts \
             (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id, n) \
         SELECT project_id, status, span, bucket, resource_type, resource_az, image_type, \
                policy_id, sum(n) FROM ( \
             SELECT project_id, status, 0 AS span, 0 AS bucket, resource_type, resource_az, \
                    image_type, policy_id, n FROM counted_hours \
             UNION ALL SELECT project_id, status, 1, block, resource_type, resource_az, \
                    image_type, policy_id, n FROM counted_hours \
             UNION ALL SELECT project_id, status, 2, day, resource_type, resource_az, \
                    image_type, policy_id, n FROM counted_hours \
             UNION ALL SELECT project_id, status, 3, hour, resource_type, resource_az, \
                    image_type, policy_id, n FROM counted_hours \
         ) AS spans GROUP BY 1, 2, 3, 4, 5, 6, 7, 8; \
         DROP TABLE counted_hours;"
    ))
}

/// A counter whose value differs from the rows' count, as the database reports it.
#[derive(QueryableByName)]
struct DriftRow {
    /// 0: hourly, 1: daily, 2: total status counters; 3 + span: a dimension counter.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    kind: i32,
    #[diesel(sql_type = Text)]
    project_id: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    resource_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    resource_az: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    image_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    policy_id: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    bucket: Option<i32>,
    #[diesel(sql_type = BigInt)]
    counted: i64,
    #[diesel(sql_type = BigInt)]
    actual: i64,
}

/// Every counter that differs from the rows' own count, compared by the database in one
/// statement: the rows are read once (grouped by hour and dimensions, from which days, blocks
/// and totals follow), and only the differences leave the database, however many counters
/// there are (millions at scale).
///
/// Each side may lack a key the other has (a counter left at zero, or rows with no counter):
/// the sums over the union of both sides compare them all.
pub(crate) fn drift(conn: &mut DbConnection) -> QueryResult<Vec<CounterDrift>> {
    let BucketSql { hour, day, block } = bucket_sql(conn);
    // The status counters' rows carry no dimensions; NULLs group together.
    let no_dimensions = "CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
                         CAST(NULL AS TEXT)";
    let dimensions = "resource_type, resource_az, image_type, policy_id";
    let rows: Vec<DriftRow> = diesel::sql_query(format!(
        "WITH actual AS ( \
             SELECT project_id, status, {ITEM_DIMENSIONS}, {hour} AS hour, {day} AS day, \
                    {block} AS block, count(*) AS n \
             FROM backup_items GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) \
         SELECT kind, project_id, status, resource_type, resource_az, image_type, policy_id, \
                bucket, CAST(SUM(counted) AS BIGINT) AS counted, \
                CAST(SUM(actual) AS BIGINT) AS actual \
         FROM ( \
             SELECT 0 AS kind, project_id, status, {no_dimensions_named}, hour AS bucket, \
                    n AS counted, CAST(0 AS BIGINT) AS actual FROM item_counts_hourly \
             UNION ALL SELECT 0, project_id, status, {no_dimensions}, hour, 0, n FROM actual \
             UNION ALL SELECT 1, project_id, status, {no_dimensions}, day, n, 0 \
                 FROM item_counts_daily \
             UNION ALL SELECT 1, project_id, status, {no_dimensions}, day, 0, n FROM actual \
             UNION ALL SELECT 2, project_id, status, {no_dimensions}, NULL, n, 0 FROM item_counts \
             UNION ALL SELECT 2, project_id, status, {no_dimensions}, NULL, 0, n FROM actual \
             UNION ALL SELECT 3 + span, project_id, status, {dimensions}, \
                    CASE WHEN span = 0 THEN NULL ELSE bucket END, n, 0 \
                 FROM item_dimension_counts \
             UNION ALL SELECT 3, project_id, status, {dimensions}, NULL, 0, n FROM actual \
             UNION ALL SELECT 4, project_id, status, {dimensions}, block, 0, n FROM actual \
             UNION ALL SELECT 5, project_id, status, {dimensions}, day, 0, n FROM actual \
             UNION ALL SELECT 6, project_id, status, {dimensions}, hour, 0, n FROM actual \
         ) AS sides \
         GROUP BY kind, project_id, status, resource_type, resource_az, image_type, policy_id, \
                  bucket \
         HAVING SUM(counted) <> SUM(actual) \
         ORDER BY kind, project_id, status, resource_type, resource_az, image_type, policy_id, \
                  bucket",
        no_dimensions_named = "CAST(NULL AS TEXT) AS resource_type, \
             CAST(NULL AS TEXT) AS resource_az, CAST(NULL AS TEXT) AS image_type, \
             CAST(NULL AS TEXT) AS policy_id",
    ))
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let dimensions = match (
                row.resource_type,
                row.resource_az,
                row.image_type,
                row.policy_id,
            ) {
                (Some(resource_type), Some(resource_az), Some(image_type), Some(policy_id))
                    if row.kind >= 3 =>
                {
                    Some(CounterDimensions {
                        resource_type,
                        resource_az,
                        image_type,
                        policy_id,
                    })
                }
                _ => None,
            };
            CounterDrift {
                bucket: match (row.kind, row.bucket) {
                    (0 | 6, Some(hour)) => CounterBucket::Hour(hour),
                    (1 | 5, Some(day)) => CounterBucket::Day(day),
                    (4, Some(block)) => CounterBucket::Block(block),
                    _ => CounterBucket::Total,
                },
                project_id: row.project_id,
                status: row.status,
                dimensions,
                counted: row.counted,
                actual: row.actual,
            }
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
