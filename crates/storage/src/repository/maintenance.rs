//! Maintenance: the counters checked against the rows and rebuilt from them, the statistics
//! and indexes refreshed after a bulk load, and the plans of the repository's own queries.

use csbs_domain::{BackupFilter, PageRequest, SortSpec};
use diesel::prelude::*;

use super::read::list_query;
use crate::connection::{hold_off_writers, without_statement_timeout, DbConnection};
use crate::sql::counters::{counters_for, drift, in_snapshot, refill, with_counter_statement};
use crate::sql::explain::{plan, Mode};
use crate::sql::filters::{filtered_searching, SubstringSearch};
use crate::{CounterDrift, PoolMode, Repository, StorageError};

impl Repository {
    /// Tidies up after a bulk load: refreshes the planner's statistics, so that the next
    /// queries are planned for the data as it now is rather than as it was (a tenant that grew
    /// from nothing to most of the table would otherwise be planned as tiny), and on
    /// PostgreSQL compacts the counters' indexes.
    ///
    /// After an initial load ([`Repository::begin_bulk_load`]) it first makes the indexes,
    /// counters and triggers the load set aside.
    pub fn finish_bulk_load(&self) -> Result<(), StorageError> {
        use diesel::connection::SimpleConnection;
        // Counters just counted from the rows are compact already.
        let counters_fresh = self.complete_initial_load()?;
        let mut conn = self.connection()?;
        let _unbounded = conn.without_sqlite_timeout();
        match &mut *conn {
            // ANALYZE of a large table takes longer than the statement timeout meant for
            // the service's reads; it is exempt, in a transaction of its own.
            DbConnection::Postgresql(pg) => {
                pg.transaction(|pg| {
                    pg.batch_execute(
                        "SET LOCAL statement_timeout = 0; \
                         ANALYZE backup_items, item_counts, item_counts_daily, item_counts_hourly, \
                         item_dimension_counts",
                    )
                })?;
                // A bulk load updates each counter row many times between vacuums, and each
                // update leaves an entry in the counters' covering indexes: at 10M items
                // their pages were 5× the live entries, and a tenant's time-range sum read 3×
                // the pages it needs (0.64 vs 0.35 ms). Rebuilt without blocking reads or
                // writes; REINDEX CONCURRENTLY cannot run in a transaction.
                // One statement per message: several in one run as one transaction.
                const COUNTERS: [&str; 4] = [
                    "item_counts",
                    "item_counts_daily",
                    "item_counts_hourly",
                    "item_dimension_counts",
                ];
                match self.pool_mode() {
                    _ if counters_fresh => {}
                    PoolMode::Session => without_statement_timeout(pg, |pg| {
                        for table in COUNTERS {
                            pg.batch_execute(&format!("REINDEX TABLE CONCURRENTLY {table}"))?;
                        }
                        Ok(())
                    })?,
                    // Lent a server session per transaction, the timeout can only be lifted
                    // inside one, where REINDEX cannot be concurrent: writers wait for the
                    // (small) counter tables to be rebuilt.
                    PoolMode::Transaction => pg.transaction(|pg| {
                        let reindex = COUNTERS.map(|table| format!("REINDEX TABLE {table}"));
                        pg.batch_execute(&format!(
                            "SET LOCAL statement_timeout = 0; {}",
                            reindex.join("; ")
                        ))
                    })?,
                }
            }
            DbConnection::Sqlite(sqlite) => sqlite.batch_execute("PRAGMA optimize")?,
        }
        Ok(())
    }

    /// Every counter that disagrees with the rows (an empty list when all agree).
    pub fn check_counters(&self) -> Result<Vec<CounterDrift>, StorageError> {
        let mut conn = self.connection()?;
        let _unbounded = conn.without_sqlite_timeout();
        Ok(in_snapshot(&mut conn, drift)?)
    }

    /// Recomputes every counter from the rows, with writers held off meanwhile; returns the
    /// drift that was repaired.
    pub fn rebuild_counters(&self) -> Result<Vec<CounterDrift>, StorageError> {
        let mut pooled = self.connection()?;
        let _unbounded = pooled.without_sqlite_timeout();
        let conn: &mut DbConnection = &mut pooled;
        Ok(conn.transaction(|conn| {
            hold_off_writers(conn, "SHARE")?;
            let repaired = drift(conn)?;
            refill(conn)?;
            Ok::<_, diesel::result::Error>(repaired)
        })?)
    }
}

impl Repository {
    /// The database's plan for [`Repository::count`] with `filter`: the statement it runs,
    /// from the counters or from the rows.
    pub fn explain_count(&self, filter: &BackupFilter) -> Result<Vec<String>, StorageError> {
        self.count_plan(filter, Mode::Estimate)
    }

    /// [`Repository::explain_count`] run and measured (`EXPLAIN (ANALYZE, BUFFERS)` on
    /// PostgreSQL; SQLite gives its estimated plan).
    pub fn explain_analyze_count(
        &self,
        filter: &BackupFilter,
    ) -> Result<Vec<String>, StorageError> {
        self.count_plan(filter, Mode::Analyze)
    }

    fn count_plan(&self, filter: &BackupFilter, mode: Mode) -> Result<Vec<String>, StorageError> {
        let mut conn = self.connection()?;
        match counters_for(&filter.criteria) {
            Some(counters) => with_counter_statement(filter, counters, |statement| {
                plan(&mut conn, statement, mode)
            }),
            None => {
                let search = SubstringSearch::for_filter(&mut conn, filter)?;
                plan(&mut conn, filtered_searching(filter, search).count(), mode)
            }
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
        let search = SubstringSearch::for_filter(&mut conn, filter)?;
        plan(
            &mut conn,
            list_query(filter, search, sort, page),
            Mode::Estimate,
        )
    }
}
