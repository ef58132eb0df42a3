//! Initial loads: an import into an empty table builds the secondary indexes and the counters
//! after the rows, as `pg_restore` does, instead of keeping them up to date row by row.
//!
//! [`Repository::begin_bulk_load`] looks at the table in one transaction that keeps every
//! writer out. When it holds no item, the definitions of its secondary indexes and of its
//! counter triggers are saved in `deferred_for_initial_load` and they are dropped; the primary
//! key stays (the upserts need it). [`Repository::finish_bulk_load`] makes them again from the
//! saved statements, counts every counter from the rows, and empties the table of deferrals,
//! in one transaction that holds writers off, so no write can fall between the counters and
//! the triggers.
//!
//! Nothing written is lost if the load stops half way: the rows committed so far are in the
//! table, and the deferrals say that the indexes and counters are still to be made. The next
//! `import` or `seed` goes on in the same mode and completes them. Meanwhile counts refuse to
//! use the counters (503: an initial load is in progress), lists and shows read the rows
//! without the indexes, and writes through the service are counted when the counters are made.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::connection::{hold_off_writers, DbConnection};
use crate::schema::deferred_for_initial_load;
use crate::sql::counters::refill;
use crate::{Repository, StorageError};

/// How a bulk load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkLoad {
    /// Into a table that holds items: indexes and counters are kept up to date as rows come.
    Incremental,
    /// Into an empty table (or going on with an initial load that stopped): indexes and
    /// counters are made by [`Repository::finish_bulk_load`].
    Initial,
}

/// One saved definition.
#[derive(QueryableByName, Queryable, Insertable)]
#[diesel(table_name = deferred_for_initial_load)]
struct Deferred {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// The secondary indexes and the triggers of `backup_items`, as the catalog defines them.
fn catalog_definitions(conn: &mut DbConnection) -> QueryResult<Vec<Deferred>> {
    match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "SELECT i.relname::text AS name, 'index' AS kind, \
                    pg_get_indexdef(i.oid) AS definition \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = 'backup_items'::regclass AND NOT x.indisprimary \
             UNION ALL \
             SELECT tgname::text, 'trigger', pg_get_triggerdef(oid) \
             FROM pg_trigger WHERE tgrelid = 'backup_items'::regclass AND NOT tgisinternal \
             ORDER BY 2, 1",
        )
        .load(pg),
        DbConnection::Sqlite(sqlite) => diesel::sql_query(
            // Automatic indexes (the primary key's) have no SQL and stay.
            "SELECT name, type AS kind, sql AS definition FROM sqlite_master \
             WHERE tbl_name = 'backup_items' AND type IN ('index', 'trigger') \
               AND sql IS NOT NULL ORDER BY 2, 1",
        )
        .load(sqlite),
    }
}

fn drop_statement(conn: &DbConnection, deferred: &Deferred) -> String {
    match (conn, deferred.kind.as_str()) {
        (DbConnection::Postgresql(_), "trigger") => {
            format!("DROP TRIGGER \"{}\" ON backup_items", deferred.name)
        }
        (_, "trigger") => format!("DROP TRIGGER \"{}\"", deferred.name),
        _ => format!("DROP INDEX \"{}\"", deferred.name),
    }
}

fn saved(conn: &mut DbConnection) -> QueryResult<Vec<Deferred>> {
    deferred_for_initial_load::table
        .select((
            deferred_for_initial_load::name,
            deferred_for_initial_load::kind,
            deferred_for_initial_load::definition,
        ))
        .order((
            deferred_for_initial_load::kind,
            deferred_for_initial_load::name,
        ))
        .load(conn)
}

/// Whether the query `sql` (an `EXISTS (…)`) is true.
fn exists(conn: &mut DbConnection, sql: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        value: bool,
    }
    Ok(diesel::sql_query(format!("SELECT {sql} AS value"))
        .get_result::<Exists>(conn)?
        .value)
}

/// Whether an initial load has not finished: its deferrals are still saved.
fn initial_load_pending(conn: &mut DbConnection) -> QueryResult<bool> {
    exists(conn, "EXISTS (SELECT 1 FROM deferred_for_initial_load)")
}

impl Repository {
    /// Prepares a bulk load (`import`, `seed`): an initial load when the table holds no item
    /// or an initial load has not finished, else an incremental one. Call
    /// [`Repository::finish_bulk_load`] when the rows are written.
    pub fn begin_bulk_load(&self) -> Result<BulkLoad, StorageError> {
        let mut pooled = self.connection()?;
        let _unbounded = pooled.without_sqlite_timeout();
        let conn: &mut DbConnection = &mut pooled;
        Ok(conn.transaction(|conn| {
            hold_off_writers(conn, "EXCLUSIVE")?;
            if initial_load_pending(conn)? {
                return Ok(BulkLoad::Initial);
            }
            if exists(conn, "EXISTS (SELECT 1 FROM backup_items)")? {
                return Ok::<_, diesel::result::Error>(BulkLoad::Incremental);
            }
            let definitions = catalog_definitions(conn)?;
            for deferred in &definitions {
                // One row at a time: a multi-row insert has no common SQL for both backends.
                diesel::insert_into(deferred_for_initial_load::table)
                    .values(deferred)
                    .execute(conn)?;
                let statement = drop_statement(conn, deferred);
                conn.batch_execute(&statement)?;
            }
            Ok(BulkLoad::Initial)
        })?)
    }

    /// Makes what an initial load set aside: the indexes, the counters (counted from the
    /// rows) and the triggers. Does nothing when no initial load is pending.
    ///
    /// The indexes are built first, each in a transaction of its own, on PostgreSQL on two
    /// connections at once (the trigram indexes first: PostgreSQL builds a GIN index on one
    /// core, a btree index with parallel workers). An index that exists already, from a
    /// finishing step that stopped, is not built again. Writers may write between two builds:
    /// an index keeps itself up to date from the moment it exists, and the counters are
    /// counted afterwards. They are, from all the rows, in one transaction that holds writers
    /// off until the triggers are back, so no write falls between the counters and the
    /// triggers.
    pub(crate) fn complete_initial_load(&self) -> Result<bool, StorageError> {
        let (deferred, existing) = {
            let mut pooled = self.connection()?;
            let _unbounded = pooled.without_sqlite_timeout();
            let conn: &mut DbConnection = &mut pooled;
            conn.transaction(|conn| {
                // Maintenance, spared the reads' statement timeout as the rest of it is.
                if let DbConnection::Postgresql(pg) = conn {
                    pg.batch_execute("SET LOCAL statement_timeout = 0")?;
                }
                Ok::<_, diesel::result::Error>((saved(conn)?, catalog_definitions(conn)?))
            })?
        };
        if deferred.is_empty() {
            return Ok(false);
        }
        let existing: Vec<String> = existing.into_iter().map(|d| d.name).collect();
        let mut indexes: Vec<&Deferred> = deferred
            .iter()
            .filter(|d| d.kind == "index" && !existing.contains(&d.name))
            .collect();
        // Longest first (a GIN build is the longest and has one core), so that the two
        // connections finish together; the sort is stable and keeps the saved order otherwise.
        indexes.sort_by_key(|d| !d.definition.to_ascii_lowercase().contains("using gin"));
        let builders = match self.backend() {
            crate::Backend::Postgres => self.pool_state().max.clamp(1, 2) as usize,
            crate::Backend::Sqlite => 1,
        };
        self.build_indexes(&indexes, builders)?;

        let mut pooled = self.connection()?;
        let _unbounded = pooled.without_sqlite_timeout();
        let conn: &mut DbConnection = &mut pooled;
        Ok(conn.transaction(|conn| {
            hold_off_writers(conn, "SHARE")?;
            if saved(conn)?.is_empty() {
                // Another finishing step completed it meanwhile.
                return Ok::<_, diesel::result::Error>(false);
            }
            refill(conn)?;
            for trigger in deferred.iter().filter(|d| d.kind == "trigger") {
                conn.batch_execute(&trigger.definition)?;
            }
            conn.batch_execute("DELETE FROM deferred_for_initial_load")?;
            Ok(true)
        })?)
    }

    /// Runs the saved `CREATE INDEX` statements on `builders` connections, each taking the
    /// next statement when its last is done; the first failure stops them all.
    fn build_indexes(&self, indexes: &[&Deferred], builders: usize) -> Result<(), StorageError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let build = || -> Result<(), StorageError> {
            let mut pooled = self.connection()?;
            let _unbounded = pooled.without_sqlite_timeout();
            let conn: &mut DbConnection = &mut pooled;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(index) = indexes.get(i) else {
                    return Ok(());
                };
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(());
                }
                let built = conn.transaction(|conn| {
                    if let DbConnection::Postgresql(pg) = conn {
                        // An index build sorts the whole table: no statement timeout, and
                        // memory to sort in fewer passes.
                        pg.batch_execute(
                            "SET LOCAL statement_timeout = 0; \
                             SET LOCAL maintenance_work_mem = '256MB'",
                        )?;
                    }
                    conn.batch_execute(&index.definition)
                });
                if let Err(error) = built {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(error.into());
                }
            }
        };
        std::thread::scope(|scope| {
            let build = &build;
            let running: Vec<_> = (0..builders).map(|_| scope.spawn(build)).collect();
            running
                .into_iter()
                .map(|builder| {
                    builder
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Result<Vec<()>, StorageError>>()
                .map(drop)
        })
    }
}
