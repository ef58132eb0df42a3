//! Query plans of the repository's own queries, for the index checks in the tests and for
//! operators who want to see how a filter is answered.

use std::marker::PhantomData;

use csbs_domain::{BackupFilter, PageRequest, SortSpec};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};

use crate::connection::{DbConnection, MultiBackend};
use crate::counters::{counters_apply, with_counter_statement};
use crate::filters::filtered;
use crate::repository::list_query;
use crate::{Repository, StorageError};

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

/// The plan lines of `query` on `conn`'s backend.
fn plan<Q: QueryFragment<MultiBackend>>(
    conn: &mut DbConnection,
    query: Q,
) -> Result<Vec<String>, StorageError> {
    match conn {
        DbConnection::Postgresql(_) => Ok(Explain::<Q, Text> {
            query,
            prefix: "EXPLAIN ",
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

impl Repository {
    /// The database's plan for [`Repository::count`] with `filter`.
    pub fn explain_count(&self, filter: &BackupFilter) -> Result<Vec<String>, StorageError> {
        let mut conn = self.connection()?;
        if counters_apply(&filter.criteria) {
            with_counter_statement(filter, |statement| plan(&mut conn, statement))
        } else {
            plan(&mut conn, filtered(filter).count())
        }
    }

    /// The database's plan for [`Repository::list`] with these arguments.
    pub fn explain_list(
        &self,
        filter: &BackupFilter,
        sort: &SortSpec,
        page: &PageRequest,
    ) -> Result<Vec<String>, StorageError> {
        let mut conn = self.connection()?;
        plan(&mut conn, list_query(filter, sort, page))
    }
}
