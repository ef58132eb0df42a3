//! Sorting and keyset paging: the `sort` keys as ORDER BY, and "after the marker item" as a
//! condition on the sort keys, so that a page deep in a list costs what the first page does.

use csbs_domain::{ItemId, SortDirection, SortKey, TenantScope};
use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping,
};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Text};

use crate::connection::MultiBackend;
use crate::schema::backup_items;
use crate::sql::filters::ItemsQuery;
use crate::sql::prepared::static_sql;

/// `protected_at` is nullable; an absent time sorts before every real one, on both backends
/// (PostgreSQL and SQLite place NULLs differently by default).
const PROTECTED_AT_SQL: &str = "COALESCE(protected_at_us, -9223372036854775808)";

/// A sort key as an SQL expression over the items table.
fn key_sql(key: SortKey) -> &'static str {
    match key {
        SortKey::CreatedAt => "created_at_us",
        SortKey::UpdatedAt => "updated_at_us",
        SortKey::Name => "name",
        SortKey::Status => "status",
        SortKey::ProtectedAt => PROTECTED_AT_SQL,
        SortKey::Id => "id",
    }
}

/// One key of an ordering: its SQL over the items table, and its direction.
pub(crate) type OrderKey = (&'static str, SortDirection);

/// The full ordering of a query: the requested keys (ending with `id`), then, across tenants,
/// `project_id`, because ids are unique only within a tenant.
pub(crate) fn full_order(keys: &[(SortKey, SortDirection)], across_tenants: bool) -> Vec<OrderKey> {
    let mut order: Vec<OrderKey> = keys.iter().map(|&(key, dir)| (key_sql(key), dir)).collect();
    if across_tenants {
        let last = keys.last().map_or(SortDirection::Desc, |&(_, dir)| dir);
        order.push(("project_id", last));
    }
    order
}

/// Applies ORDER BY for `order`.
pub(crate) fn order_by<'a>(mut query: ItemsQuery<'a>, order: &[OrderKey]) -> ItemsQuery<'a> {
    for &(sql, direction) in order {
        // The SQL type of a key only matters where its value is read; ORDER BY never does.
        let expression = static_sql::<BigInt>(sql);
        query = match direction {
            SortDirection::Asc => query.then_order_by(expression.asc()),
            SortDirection::Desc => query.then_order_by(expression.desc()),
        };
    }
    query
}

/// "Comes after the item `marker` of `scope` in `order`" as a condition. The marker's sort
/// keys are read by subqueries of the same statement, so a page after a marker is one round
/// trip, like the first page, and reads the marker in the page's own snapshot. A marker that
/// names no item makes the condition NULL, and the page empty.
pub(crate) fn after_marker(
    order: &[OrderKey],
    scope: &TenantScope,
    marker: &ItemId,
) -> AfterMarker {
    AfterMarker {
        keys: order.to_vec(),
        marker: MarkerLookup {
            project: match scope {
                TenantScope::Project(project) => Some(project.as_str().to_owned()),
                TenantScope::AllTenants => None,
            },
            id: marker.as_str().to_owned(),
        },
    }
}

/// `(SELECT columns FROM backup_items WHERE …marker…)`: the marker item in the filter's tenant
/// scope (across tenants, where ids may repeat, the first by tenant, as the list orders them).
#[derive(Debug, Clone)]
struct MarkerLookup {
    project: Option<String>,
    id: String,
}

impl MarkerLookup {
    fn walk_ast<'b>(
        &'b self,
        columns: &[&'static str],
        out: &mut AstPass<'_, 'b, MultiBackend>,
    ) -> QueryResult<()> {
        out.push_sql("(SELECT ");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_sql(column);
        }
        out.push_sql(" FROM backup_items WHERE ");
        if let Some(project) = &self.project {
            out.push_sql("project_id = ");
            out.push_bind_param::<Text, str>(project)?;
            out.push_sql(" AND ");
        }
        out.push_sql("id = ");
        out.push_bind_param::<Text, str>(&self.id)?;
        if self.project.is_none() {
            out.push_sql(" ORDER BY project_id LIMIT 1");
        }
        out.push_sql(")");
        Ok(())
    }
}

/// The keyset condition. When every key runs in one direction it is a row comparison,
/// `(k1, k2, id) < (SELECT k1, k2, id …marker…)`, which both databases answer from an index
/// range; otherwise the expanded form `k1 ≷ v1 OR (k1 = v1 AND (k2 ≷ v2 OR …))`, led by
/// `k1 ≷= v1` so that the first key still bounds an index scan, with each `v` a scalar
/// subquery (evaluated once: it does not depend on the outer row).
#[derive(Debug, Clone)]
pub(crate) struct AfterMarker {
    keys: Vec<OrderKey>,
    marker: MarkerLookup,
}

fn strictly(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Asc => " > ",
        SortDirection::Desc => " < ",
    }
}

impl QueryFragment<MultiBackend> for AfterMarker {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        let Some(&(first_sql, first_direction)) = self.keys.first() else {
            out.push_sql("1 = 1");
            return Ok(());
        };
        let uniform = self.keys.iter().all(|&(_, d)| d == first_direction);
        if uniform {
            let columns: Vec<&'static str> = self.keys.iter().map(|&(sql, _)| sql).collect();
            out.push_sql("(");
            out.push_sql(&columns.join(", "));
            out.push_sql(")");
            out.push_sql(strictly(first_direction));
            return self.marker.walk_ast(&columns, &mut out);
        }
        out.push_sql("(");
        out.push_sql(first_sql);
        out.push_sql(match first_direction {
            SortDirection::Asc => " >= ",
            SortDirection::Desc => " <= ",
        });
        self.marker.walk_ast(&[first_sql], &mut out)?;
        out.push_sql(" AND ");
        for (i, &(sql, direction)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push_sql(" OR (");
                let (prev_sql, _) = self.keys[i - 1];
                out.push_sql(prev_sql);
                out.push_sql(" = ");
                self.marker.walk_ast(&[prev_sql], &mut out)?;
                out.push_sql(" AND ");
            }
            out.push_sql("(");
            out.push_sql(sql);
            out.push_sql(strictly(direction));
            self.marker.walk_ast(&[sql], &mut out)?;
        }
        for _ in 0..self.keys.len() {
            out.push_sql(")");
        }
        for _ in 1..self.keys.len() {
            out.push_sql(")");
        }
        out.push_sql(")");
        Ok(())
    }
}

impl QueryId for AfterMarker {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Expression for AfterMarker {
    type SqlType = Bool;
}

impl AppearsOnTable<backup_items::table> for AfterMarker {}
impl SelectableExpression<backup_items::table> for AfterMarker {}

impl ValidGrouping<()> for AfterMarker {
    type IsAggregate = is_aggregate::Never;
}
