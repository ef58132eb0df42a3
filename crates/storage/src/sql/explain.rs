//! Query plans of the repository's own queries, for the index checks in the tests and for
//! operators who want to see how a filter is answered.

use std::marker::PhantomData;

use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};

use crate::connection::{DbConnection, MultiBackend};
use crate::StorageError;

/// `EXPLAIN …` (PostgreSQL) or `EXPLAIN QUERY PLAN …` (SQLite) around a query.
struct Explain<Q, ST> {
    query: Q,
    prefix: &'static str,
    row: PhantomData<ST>,
}

impl<Q: QueryFragment<MultiBackend>, ST> QueryFragment<MultiBackend> for Explain<Q, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out.reborrow())
    }
}

impl<Q, ST> QueryId for Explain<Q, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, ST> Query for Explain<Q, ST> {
    type SqlType = ST;
}

impl<Q, ST> RunQueryDsl<DbConnection> for Explain<Q, ST> {}

/// Whether a plan is only estimated, or also run and measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Estimate,
    /// `EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL: the query runs. SQLite has no such plan and
    /// gives its estimate.
    Analyze,
}

/// The plan lines of `query` on `conn`'s backend.
pub(crate) fn plan<Q: QueryFragment<MultiBackend>>(
    conn: &mut DbConnection,
    query: Q,
    mode: Mode,
) -> Result<Vec<String>, StorageError> {
    match conn {
        DbConnection::Postgresql(_) => Ok(Explain::<Q, Text> {
            query,
            prefix: match mode {
                Mode::Estimate => "EXPLAIN ",
                Mode::Analyze => "EXPLAIN (ANALYZE, BUFFERS) ",
            },
            row: PhantomData,
        }
        .load::<String>(conn)?),
        // SQLite's plan rows are (id, parent, notused, detail); only the detail matters.
        DbConnection::Sqlite(_) => Ok(Explain::<Q, (Integer, Integer, Integer, Text)> {
            query,
            prefix: "EXPLAIN QUERY PLAN ",
            row: PhantomData,
        }
        .load::<(i32, i32, i32, String)>(conn)?
        .into_iter()
        .map(|(_, _, _, detail)| detail)
        .collect()),
    }
}
