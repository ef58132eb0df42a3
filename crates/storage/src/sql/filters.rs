//! Criteria to SQL: one `.filter()` per criterion given, on a boxed query that count and list
//! both start from, so that the two can never disagree about which items match.

use std::borrow::Cow;

use csbs_domain::{BackupFilter, BackupStatus, FilterParam, TenantScope, TextValue};
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{BigInt, Text};

use crate::connection::{DbConnection, MultiBackend};
use crate::schema::backup_items;
use crate::sql::prepared::{any_of, Comparison};

/// A boxed query over the items table.
pub(crate) type ItemsQuery<'a> = backup_items::BoxedQuery<'a, MultiBackend>;

/// `%value%` with `\`, `%` and `_` escaped, for `LIKE … ESCAPE '\'`: the wildcards of the
/// caller's text are ordinary characters.
fn contains_pattern(value: &TextValue) -> Cow<'static, str> {
    let mut pattern = String::with_capacity(value.as_str().len() + 2);
    pattern.push('%');
    for c in value.as_str().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Cow::Owned(pattern)
}

pub(crate) fn texts(values: &[TextValue]) -> Vec<Cow<'_, str>> {
    values.iter().map(|v| Cow::Borrowed(v.as_str())).collect()
}

fn patterns(values: &[TextValue]) -> Vec<Cow<'static, str>> {
    values.iter().map(contains_pattern).collect()
}

/// How the substring criteria (`name`, `resource_name`) find their rows. Both select exactly
/// the same rows; they differ only in the index PostgreSQL may use, which its planner cannot
/// choose well: it prices a trigram index scan far below what reading every trigram's posting
/// list of a long substring costs, and the tenant's own rows far above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubstringSearch {
    /// Through the trigram indexes: for large tenants and across tenants.
    Trigrams,
    /// By testing each row the other criteria select (the tenant's rows, through its B-tree
    /// indexes): for a tenant small enough that this reads less.
    TenantRows,
}

/// A tenant's substring searches test its own rows when it has at most this many items (of
/// any status, as its counters say), or at most [`TENANT_ROWS_SHARE`] of the table. Testing a
/// row costs the same whatever the table's size (about 1.5 µs, warm); a trigram scan reads
/// each trigram's posting list as far as the tenant's entries reach, and those lists grow
/// with the whole table (a 22-trigram substring: 15 ms at 1M items, 176 ms at 10M, whatever
/// the tenant). Measured in BENCHMARKS.md ("Substring searches").
pub(crate) const TENANT_ROWS_AT_LEAST: i64 = 5_000;
/// See [`TENANT_ROWS_AT_LEAST`]: the share of the table's rows (1 in this many) up to which a
/// tenant's rows are tested one by one.
pub(crate) const TENANT_ROWS_SHARE: i64 = 100;

#[derive(QueryableByName)]
struct Sizes {
    #[diesel(sql_type = BigInt)]
    tenant: i64,
    #[diesel(sql_type = BigInt)]
    table_rows: i64,
}

impl SubstringSearch {
    /// How `filter`'s substrings are best searched on `conn`: by the tenant's rows when the
    /// filter names a tenant small enough ([`TENANT_ROWS_AT_LEAST`]), else by trigrams. A
    /// filter without a substring, any filter on SQLite (which has no trigram index) and one
    /// across tenants need no look at the counters.
    pub(crate) fn for_filter(conn: &mut DbConnection, filter: &BackupFilter) -> QueryResult<Self> {
        let criteria = &filter.criteria;
        if criteria.names.is_empty() && criteria.resource_names.is_empty() {
            return Ok(Self::Trigrams);
        }
        let TenantScope::Project(project) = &filter.scope else {
            return Ok(Self::Trigrams);
        };
        let DbConnection::Postgresql(pg) = conn else {
            return Ok(Self::Trigrams);
        };
        // The tenant's items of all statuses (the deleted rows are read too), and the table's
        // rows as the statistics last saw them (-1 before the first ANALYZE). While an
        // initial load is unfinished the counters are empty and the tenant looks small: its
        // rows are then tested one by one, slower for a large tenant but exact.
        let sizes: Sizes = diesel::sql_query(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS tenant, \
             CAST((SELECT GREATEST(reltuples, 0) FROM pg_class \
                   WHERE oid = 'backup_items'::regclass) AS BIGINT) AS table_rows \
             FROM item_counts WHERE project_id = $1",
        )
        .bind::<Text, _>(project.as_str())
        .get_result(pg)?;
        let at_most = TENANT_ROWS_AT_LEAST.max(sizes.table_rows / TENANT_ROWS_SHARE);
        Ok(if sizes.tenant <= at_most {
            Self::TenantRows
        } else {
            Self::Trigrams
        })
    }

    fn comparison(self) -> Comparison {
        match self {
            Self::Trigrams => Comparison::Like,
            Self::TenantRows => Comparison::LikeEachRow,
        }
    }
}

/// `query` narrowed to rows whose `column` matches one of `values`; unchanged when there are
/// none (the criterion was not given).
fn matching<'a, C>(
    query: ItemsQuery<'a>,
    column: C,
    comparison: Comparison,
    values: Vec<Cow<'a, str>>,
) -> ItemsQuery<'a>
where
    C: Column<Table = backup_items::table>
        + AppearsOnTable<backup_items::table>
        + QueryFragment<MultiBackend>
        + Send
        + 'a,
{
    if values.is_empty() {
        query
    } else {
        query.filter(any_of(column, comparison, values))
    }
}

/// The rows `filter` selects, unordered and unpaged, any substring through the trigram indexes.
pub(crate) fn filtered(filter: &BackupFilter) -> ItemsQuery<'_> {
    filtered_searching(filter, SubstringSearch::Trigrams)
}

/// The rows `filter` selects, unordered and unpaged, substrings searched as `search` says.
pub(crate) fn filtered_searching(filter: &BackupFilter, search: SubstringSearch) -> ItemsQuery<'_> {
    use backup_items::dsl as items;

    let mut query = items::backup_items.into_boxed();
    if let TenantScope::Project(project) = &filter.scope {
        query = query.filter(items::project_id.eq(project.as_str()));
    }
    let criteria = &filter.criteria;
    for param in FilterParam::ALL {
        query = match param {
            FilterParam::Status if criteria.statuses.is_empty() => {
                query.filter(items::status.ne(BackupStatus::Deleted.as_str()))
            }
            FilterParam::Status => {
                let statuses = criteria
                    .effective_statuses()
                    .iter()
                    .map(|s| Cow::Borrowed(s.as_str()))
                    .collect();
                query.filter(any_of(items::status, Comparison::Equals, statuses))
            }
            FilterParam::Name => matching(
                query,
                items::name,
                search.comparison(),
                patterns(&criteria.names),
            ),
            FilterParam::ResourceName => matching(
                query,
                items::resource_name,
                search.comparison(),
                patterns(&criteria.resource_names),
            ),
            FilterParam::ResourceId => matching(
                query,
                items::resource_id,
                Comparison::Equals,
                texts(&criteria.resource_ids),
            ),
            FilterParam::CheckpointId => {
                let checkpoint_ids = criteria
                    .checkpoint_ids
                    .iter()
                    .map(|id| Cow::Borrowed(id.as_str()))
                    .collect();
                matching(
                    query,
                    items::checkpoint_id,
                    Comparison::Equals,
                    checkpoint_ids,
                )
            }
            FilterParam::ResourceType => matching(
                query,
                items::resource_type,
                Comparison::Equals,
                texts(&criteria.resource_types),
            ),
            FilterParam::Az => matching(
                query,
                items::resource_az,
                Comparison::Equals,
                texts(&criteria.azs),
            ),
            FilterParam::ImageType => matching(
                query,
                items::image_type,
                Comparison::Equals,
                texts(&criteria.image_types),
            ),
            FilterParam::PolicyId => matching(
                query,
                items::policy_id,
                Comparison::Equals,
                texts(&criteria.policy_ids),
            ),
            FilterParam::Ip if criteria.ips.is_empty() => query,
            FilterParam::Ip => {
                let ips: Vec<Cow<'_, str>> = criteria
                    .ips
                    .iter()
                    .map(|ip| Cow::Borrowed(ip.as_str()))
                    .collect();
                query.filter(
                    any_of(items::private_ip, Comparison::Equals, ips.clone()).or(any_of(
                        items::eip,
                        Comparison::Equals,
                        ips,
                    )),
                )
            }
            FilterParam::StartTime => match criteria.created_from {
                Some(from) => query.filter(items::created_at_us.ge(from)),
                None => query,
            },
            FilterParam::EndTime => match criteria.created_to {
                Some(to) => query.filter(items::created_at_us.le(to)),
                None => query,
            },
            // The scope is applied above; `dec` selects nothing.
            FilterParam::AllTenants | FilterParam::Dec => query,
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_escaped() {
        let cases = [
            ("web", "%web%"),
            ("50%", "%50\\%%"),
            ("a_b", "%a\\_b%"),
            ("back\\slash", "%back\\\\slash%"),
        ];
        for (input, expected) in cases {
            let value = TextValue::parse("name", input).unwrap();
            assert_eq!(contains_pattern(&value), Cow::<str>::Borrowed(expected));
        }
    }
}
