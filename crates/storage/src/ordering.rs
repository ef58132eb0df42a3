//! Sorting and keyset paging: the `sort` keys as ORDER BY, and "after the marker item" as a
//! condition on the sort keys, so that a page deep in a list costs what the first page does.

use csbs_domain::{SortDirection, SortKey};
use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping,
};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Text};

use crate::connection::MultiBackend;
use crate::filters::ItemsQuery;
use crate::prepared::static_sql;
use crate::schema::backup_items;

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

/// The sort-key values of one row: where a page after it starts.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct MarkerRow {
    pub project_id: String,
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub protected_at_us: Option<i64>,
}

/// The columns of [`MarkerRow`], in its order.
pub(crate) type MarkerColumns = (
    backup_items::project_id,
    backup_items::id,
    backup_items::name,
    backup_items::status,
    backup_items::created_at_us,
    backup_items::updated_at_us,
    backup_items::protected_at_us,
);

/// The columns to select for a [`MarkerRow`].
pub(crate) const MARKER_COLUMNS: MarkerColumns = (
    backup_items::project_id,
    backup_items::id,
    backup_items::name,
    backup_items::status,
    backup_items::created_at_us,
    backup_items::updated_at_us,
    backup_items::protected_at_us,
);

/// One value of a sort key.
#[derive(Debug, Clone)]
enum KeyValue {
    Int(i64),
    Text(String),
}

impl MarkerRow {
    fn value(&self, key: SortKey) -> KeyValue {
        match key {
            SortKey::CreatedAt => KeyValue::Int(self.created_at_us),
            SortKey::UpdatedAt => KeyValue::Int(self.updated_at_us),
            SortKey::Name => KeyValue::Text(self.name.clone()),
            SortKey::Status => KeyValue::Text(self.status.clone()),
            SortKey::ProtectedAt => KeyValue::Int(self.protected_at_us.unwrap_or(i64::MIN)),
            SortKey::Id => KeyValue::Text(self.id.clone()),
        }
    }
}

/// The full ordering of a query: the requested keys (ending with `id`), then, across tenants,
/// `project_id`, because ids are unique only within a tenant.
pub(crate) fn full_order(
    keys: &[(SortKey, SortDirection)],
    across_tenants: bool,
) -> Vec<(&'static str, SortDirection, Option<SortKey>)> {
    let mut order: Vec<_> = keys
        .iter()
        .map(|&(key, dir)| (key_sql(key), dir, Some(key)))
        .collect();
    if across_tenants {
        let last = keys.last().map_or(SortDirection::Desc, |&(_, dir)| dir);
        order.push(("project_id", last, None));
    }
    order
}

/// Applies ORDER BY for `order`.
pub(crate) fn order_by<'a>(
    mut query: ItemsQuery<'a>,
    order: &[(&'static str, SortDirection, Option<SortKey>)],
) -> ItemsQuery<'a> {
    for &(sql, direction, _) in order {
        // The SQL type of a key only matters where its value is read; ORDER BY never does.
        let expression = static_sql::<BigInt>(sql);
        query = match direction {
            SortDirection::Asc => query.then_order_by(expression.asc()),
            SortDirection::Desc => query.then_order_by(expression.desc()),
        };
    }
    query
}

/// "Comes after `marker` in `order`" as a condition.
pub(crate) fn after_marker(
    order: &[(&'static str, SortDirection, Option<SortKey>)],
    marker: &MarkerRow,
) -> AfterMarker {
    let keys = order
        .iter()
        .map(|&(sql, direction, key)| {
            let value = match key {
                Some(key) => marker.value(key),
                None => KeyValue::Text(marker.project_id.clone()),
            };
            (sql, direction, value)
        })
        .collect();
    AfterMarker { keys }
}

/// The keyset condition. When every key runs in one direction it is a row comparison,
/// `(k1, k2, id) < (v1, v2, vid)`, which both databases answer from an index range; otherwise
/// the expanded form `k1 ≷ v1 OR (k1 = v1 AND (k2 ≷ v2 OR …))`, led by `k1 ≷= v1` so that the
/// first key still bounds an index scan.
#[derive(Debug, Clone)]
pub(crate) struct AfterMarker {
    keys: Vec<(&'static str, SortDirection, KeyValue)>,
}

impl AfterMarker {
    fn push_value<'b>(
        out: &mut AstPass<'_, 'b, MultiBackend>,
        value: &'b KeyValue,
    ) -> QueryResult<()> {
        match value {
            KeyValue::Int(v) => out.push_bind_param::<BigInt, i64>(v),
            KeyValue::Text(v) => out.push_bind_param::<Text, String>(v),
        }
    }
}

fn strictly(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Asc => " > ",
        SortDirection::Desc => " < ",
    }
}

impl QueryFragment<MultiBackend> for AfterMarker {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        let Some((first_sql, first_direction, first_value)) = self.keys.first() else {
            out.push_sql("1 = 1");
            return Ok(());
        };
        let uniform = self.keys.iter().all(|(_, d, _)| d == first_direction);
        if uniform {
            out.push_sql("(");
            for (i, (sql, _, _)) in self.keys.iter().enumerate() {
                if i > 0 {
                    out.push_sql(", ");
                }
                out.push_sql(sql);
            }
            out.push_sql(")");
            out.push_sql(strictly(*first_direction));
            out.push_sql("(");
            for (i, (_, _, value)) in self.keys.iter().enumerate() {
                if i > 0 {
                    out.push_sql(", ");
                }
                Self::push_value(&mut out, value)?;
            }
            out.push_sql(")");
            return Ok(());
        }
        out.push_sql("(");
        out.push_sql(first_sql);
        out.push_sql(match first_direction {
            SortDirection::Asc => " >= ",
            SortDirection::Desc => " <= ",
        });
        Self::push_value(&mut out, first_value)?;
        out.push_sql(" AND ");
        for (i, (sql, direction, value)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push_sql(" OR (");
                let (prev_sql, _, prev_value) = &self.keys[i - 1];
                out.push_sql(prev_sql);
                out.push_sql(" = ");
                Self::push_value(&mut out, prev_value)?;
                out.push_sql(" AND ");
            }
            out.push_sql("(");
            out.push_sql(sql);
            out.push_sql(strictly(*direction));
            Self::push_value(&mut out, value)?;
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
