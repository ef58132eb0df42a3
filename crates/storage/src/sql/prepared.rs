//! SQL pieces that keep a query's prepared statement cacheable.
//!
//! diesel keeps one prepared statement per distinct SQL text on each connection, so that a
//! query shape is parsed and planned once rather than on every request (on PostgreSQL, planning
//! a query over the items table and its indexes costs more than running a cheap one). It
//! refuses to cache a statement that holds an SQL literal (`diesel::dsl::sql`) or an `IN` list,
//! because their text can vary without bound. The pieces here have text that is either fixed
//! (`StaticSql`) or, for a criterion with several values (`AnyOf`), independent of the number
//! of values on PostgreSQL and one of a few texts on SQLite; the statement cache is keyed by
//! the whole SQL text, so caching them is correct. The number of distinct shapes a connection
//! may accumulate is bounded by the pool as well (`pool::MAX_CACHED_STATEMENTS`).

use std::borrow::Cow;
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

/// How each value of an [`AnyOf`] is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// `expression = value`.
    Equals,
    /// `expression LIKE value`, with `\` escaping the pattern's wildcards.
    Like,
    /// As `Like`, but tested on each row the other conditions select: on PostgreSQL the
    /// expression is written `(expression || '')`, which no index matches, so that the
    /// planner cannot pick a trigram index for it.
    LikeEachRow,
}

/// `expression` compared with any of several text values: one criterion given several times.
///
/// The SQL never nests: however many values there are, it is one flat list, so building and
/// walking it recurses to no depth the caller could choose. And its text depends as little as
/// possible on the number of values, since each distinct text is another prepared statement:
///
/// - PostgreSQL binds two or more values as one array, `expression = ANY(CAST($1 AS TEXT[]))`
///   (or `LIKE ANY`), so one statement serves any number of them, and compares one value
///   plainly (`= $1`): two texts per criterion. Both forms are index conditions (B-tree array
///   keys; bitmap scans of the trigram indexes for `LIKE`).
/// - SQLite has no arrays: `expression IN (?, …)`, or a flat `(… LIKE ? ESCAPE '\' OR …)`,
///   with the list padded to the next power of two by repeating its last value (which changes
///   nothing it matches), so that at most eight texts exist per criterion
///   ([`csbs_domain::MAX_VALUES_PER_FILTER`] values at most).
#[derive(Debug, Clone)]
pub(crate) struct AnyOf<'a, E> {
    expression: E,
    comparison: Comparison,
    values: Vec<Cow<'a, str>>,
    /// The values as a PostgreSQL array literal.
    array: String,
}

/// `expression` equal to any of `values`, or `LIKE` any of them; never empty (the caller
/// skips a criterion without values).
pub(crate) fn any_of<'a, E>(
    expression: E,
    comparison: Comparison,
    values: Vec<Cow<'a, str>>,
) -> AnyOf<'a, E> {
    debug_assert!(!values.is_empty(), "a criterion needs at least one value");
    let array = array_literal(&values);
    AnyOf {
        expression,
        comparison,
        values,
        array,
    }
}

/// `{"a","b\"c"}`: every element quoted, so no value is read as `NULL` or split at a comma.
fn array_literal(values: &[Cow<'_, str>]) -> String {
    let mut literal = String::with_capacity(values.iter().map(|v| v.len() + 3).sum::<usize>() + 2);
    literal.push('{');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in value.chars() {
            if matches!(c, '"' | '\\') {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

impl<E> Expression for AnyOf<'_, E> {
    type SqlType = Bool;
}

impl<E: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for AnyOf<'_, E> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        if matches!(out.backend(), MultiBackend::Postgresql(_)) {
            if self.comparison != Comparison::Equals {
                // A statement with a substring is planned for its values, never cached: the
                // generic plan PostgreSQL switches a cached statement to cannot see the
                // pattern, prices `LIKE $n` as selective as any, and walks the tenant's time
                // range filtering each row (525 ms) where the trigram index answers (38 ms).
                out.unsafe_to_cache_prepared();
            }
            if self.comparison == Comparison::LikeEachRow {
                out.push_sql("(");
                self.expression.walk_ast(out.reborrow())?;
                out.push_sql(" || '')");
            } else {
                self.expression.walk_ast(out.reborrow())?;
            }
            if let [value] = self.values.as_slice() {
                // One value, the usual case: a plain comparison. `= ANY` of an array
                // parameter unpacks the array for every row it filters (0.96 → 1.35 ms for a
                // count filtering 800 rows).
                out.push_sql(match self.comparison {
                    Comparison::Equals => " = ",
                    Comparison::Like | Comparison::LikeEachRow => " LIKE ",
                });
                out.push_bind_param::<Text, str>(value)?;
                return Ok(());
            }
            out.push_sql(match self.comparison {
                // LIKE's escape character is `\` by default on PostgreSQL.
                Comparison::Equals => " = ANY(CAST(",
                Comparison::Like | Comparison::LikeEachRow => " LIKE ANY(CAST(",
            });
            out.push_bind_param::<Text, str>(&self.array)?;
            out.push_sql(" AS TEXT[]))");
            return Ok(());
        }
        let padded = self.values.len().next_power_of_two();
        let value = |i: usize| &*self.values[i.min(self.values.len() - 1)];
        match self.comparison {
            Comparison::Equals => {
                self.expression.walk_ast(out.reborrow())?;
                out.push_sql(" IN (");
                for i in 0..padded {
                    if i > 0 {
                        out.push_sql(", ");
                    }
                    out.push_bind_param::<Text, str>(value(i))?;
                }
                out.push_sql(")");
            }
            // SQLite has no trigram index: every LIKE is tested row by row.
            Comparison::Like | Comparison::LikeEachRow => {
                out.push_sql("(");
                for i in 0..padded {
                    if i > 0 {
                        out.push_sql(" OR ");
                    }
                    self.expression.walk_ast(out.reborrow())?;
                    out.push_sql(" LIKE ");
                    out.push_bind_param::<Text, str>(value(i))?;
                    out.push_sql(" ESCAPE '\\'");
                }
                out.push_sql(")");
            }
        }
        Ok(())
    }
}

impl<E> QueryId for AnyOf<'_, E> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<E: AppearsOnTable<QS>, QS> AppearsOnTable<QS> for AnyOf<'_, E> {}
impl<E: SelectableExpression<QS>, QS> SelectableExpression<QS> for AnyOf<'_, E> {}

impl<E> ValidGrouping<()> for AnyOf<'_, E> {
    type IsAggregate = is_aggregate::Never;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element() {
        let values: Vec<Cow<'_, str>> =
            vec!["a".into(), "NULL".into(), "b,c".into(), "d\"e\\f".into()];
        assert_eq!(array_literal(&values), r#"{"a","NULL","b,c","d\"e\\f"}"#);
    }
}
