//! SQL pieces that keep a query's prepared statement cacheable.
//!
//! diesel keeps one prepared statement per distinct SQL text on each connection, so that a
//! query shape is parsed and planned once rather than on every request (on PostgreSQL, planning
//! a query over the items table and its indexes costs more than running a cheap one). It
//! refuses to cache a statement that holds an SQL literal (`diesel::dsl::sql`) or an `IN` list,
//! because their text can vary without bound. The pieces here have text that is either fixed
//! (`StaticSql`) or a function of the number of values (`InList`), and the statement cache is
//! keyed by the whole SQL text, so caching them is correct; the number of distinct shapes a
//! connection may accumulate is bounded by the pool instead (`pool::MAX_CACHED_STATEMENTS`).

use std::marker::PhantomData;

use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, TypedExpressionType,
    ValidGrouping,
};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text};
use diesel::QueryResult;

use crate::connection::MultiBackend;

/// A fixed piece of SQL of type `ST`, such as a sort key or an aggregate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaticSql<ST> {
    sql: &'static str,
    sql_type: PhantomData<ST>,
}

/// `sql` as an expression of type `ST`.
pub(crate) fn static_sql<ST>(sql: &'static str) -> StaticSql<ST> {
    StaticSql {
        sql,
        sql_type: PhantomData,
    }
}

impl<ST: TypedExpressionType> Expression for StaticSql<ST> {
    type SqlType = ST;
}

impl<ST> QueryFragment<MultiBackend> for StaticSql<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(self.sql);
        Ok(())
    }
}

impl<ST> QueryId for StaticSql<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST, QS> AppearsOnTable<QS> for StaticSql<ST> where StaticSql<ST>: Expression {}
impl<ST, QS> SelectableExpression<QS> for StaticSql<ST> where StaticSql<ST>: Expression {}

impl<ST> ValidGrouping<()> for StaticSql<ST> {
    type IsAggregate = is_aggregate::Never;
}

/// `expression IN (?, ?, …)` over text values; never empty (the caller skips a criterion
/// without values).
#[derive(Debug, Clone)]
pub(crate) struct InList<'a, E> {
    expression: E,
    values: Vec<&'a str>,
}

/// `expression IN (values…)`.
pub(crate) fn in_list<'a, E>(expression: E, values: Vec<&'a str>) -> InList<'a, E> {
    debug_assert!(!values.is_empty(), "an IN list needs at least one value");
    InList { expression, values }
}

impl<E> Expression for InList<'_, E> {
    type SqlType = Bool;
}

impl<E: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for InList<'_, E> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.expression.walk_ast(out.reborrow())?;
        out.push_sql(" IN (");
        for (i, &value) in self.values.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, str>(value)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

impl<E> QueryId for InList<'_, E> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<E: AppearsOnTable<QS>, QS> AppearsOnTable<QS> for InList<'_, E> {}
impl<E: SelectableExpression<QS>, QS> SelectableExpression<QS> for InList<'_, E> {}

impl<E> ValidGrouping<()> for InList<'_, E> {
    type IsAggregate = is_aggregate::Never;
}
