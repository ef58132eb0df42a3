//! Bulk upserts (`import`, `seed`): each batch is staged in a temporary table of the
//! connection and applied to `backup_items` by one set-based statement.
//!
//! Why staging rather than one upsert per row or per few hundred rows: diesel never caches the
//! prepared statement of an `ON CONFLICT DO UPDATE`, and on SQLite preparing it compiles the
//! counter triggers and every index's checks again, which cost more than the row itself. A
//! plain insert into the staging table is prepared once per connection (SQLite) or streamed
//! with binary `COPY` (PostgreSQL); the one upsert per batch is prepared once per batch. One
//! statement per batch also means the PostgreSQL counter triggers run once per batch.

use std::sync::OnceLock;

use csbs_domain::BackupRecord;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::connection::DbConnection;
use crate::rows::StagedItemRow;
use crate::schema::{import_staging, ITEM_COLUMNS};
use crate::{Backend, Repository, StorageError};

impl Backend {
    /// Items per bulk transaction unless configured.
    ///
    /// The defaults differ because the backends pay for a transaction differently. SQLite
    /// writes every page a transaction changed to its log once per commit, and with 13 indexes
    /// a batch of random keys changes about as many index pages as it has rows, so small
    /// batches write the same pages again and again: 2,000 items a batch import at half the
    /// speed of 20,000 (`BENCHMARKS.md`). The cost is that SQLite's one write lock is held
    /// for the batch (1–2.5 s at 20,000 up to a million items), which the service's writers
    /// wait out within their busy timeout. PostgreSQL imports as fast with 2,000 as with 20,000
    /// and holds no lock that readers or other writers wait for, so it keeps the smaller,
    /// cheaper-to-retry batch.
    pub fn default_import_batch(self) -> usize {
        match self {
            Self::Postgres => 2_000,
            Self::Sqlite => 20_000,
        }
    }
}

/// The staging table: a temporary table with the columns of `backup_items` (taken from the
/// table itself), so every connection has its own and nothing else ever sees it. On PostgreSQL
/// its rows vanish at commit (and with a rollback); on SQLite the batch empties it itself.
fn create_staging(backend: Backend) -> String {
    let columns = ITEM_COLUMNS.join(", ");
    match backend {
        Backend::Postgres => format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS import_staging ON COMMIT DELETE ROWS AS \
             SELECT {columns} FROM backup_items WITH NO DATA"
        ),
        Backend::Sqlite => format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS import_staging AS \
             SELECT {columns} FROM backup_items WHERE false"
        ),
    }
}

/// Applies the staged rows: new ones are inserted, changed ones replaced (their version goes
/// up), identical ones left alone, so that importing the same data twice writes nothing. Rows
/// are taken in key order, so that overlapping batches of concurrent imports lock rows in the
/// same order and cannot deadlock. (`WHERE true` lets SQLite tell the upsert's `ON` from a
/// join's.) One text serves both backends.
fn apply_staged() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let columns = ITEM_COLUMNS.join(", ");
        let changes: Vec<String> = ITEM_COLUMNS
            .iter()
            .filter(|column| !matches!(**column, "project_id" | "id"))
            .map(|column| match *column {
                "version" => "version = backup_items.version + 1".to_owned(),
                column => format!("{column} = excluded.{column}"),
            })
            .collect();
        format!(
            "INSERT INTO backup_items ({columns}) \
             SELECT {columns} FROM import_staging WHERE true ORDER BY project_id, id \
             ON CONFLICT (project_id, id) DO UPDATE SET {} \
             WHERE backup_items.document <> excluded.document \
                 OR backup_items.policy_id IS DISTINCT FROM excluded.policy_id",
            changes.join(", ")
        )
    })
}

/// SQLite's page cache while a bulk upsert runs (KiB, as `cache_size` takes a negative
/// number): large enough that the indexes' pages being filled stay in memory instead of
/// spilling to the log mid-transaction.
const SQLITE_BULK_CACHE_KIB: i64 = 256 * 1024;
/// How many pages the log may grow to before SQLite copies them into the database, while a
/// bulk upsert runs: index pages that successive batches change again are then copied once,
/// not once per batch.
const SQLITE_BULK_CHECKPOINT_PAGES: i64 = 50_000;
/// SQLite's default of the same.
const SQLITE_DEFAULT_CHECKPOINT_PAGES: i64 = 1000;
/// SQLite's default page cache (KiB), restored afterwards so that an idle pooled connection
/// does not keep the bulk cache.
const SQLITE_DEFAULT_CACHE_KIB: i64 = 2000;

impl Repository {
    /// Inserts or replaces `records` (by tenant and id) in one transaction; returns how many
    /// rows were written. A record identical to the stored one is left alone, so importing the
    /// same data twice changes nothing. When a batch holds the same item more than once, the
    /// last one wins, as if they had been written one after the other.
    pub fn upsert(&self, records: &[BackupRecord]) -> Result<usize, StorageError> {
        self.upsert_rows(last_of_each_key(records))
    }

    /// Upserts rows with distinct keys, in key order.
    fn upsert_rows(&self, rows: Vec<StagedItemRow<'_>>) -> Result<usize, StorageError> {
        let mut conn = self.connection()?;
        // A batch of an import is as long as it is (see the PostgreSQL branch).
        let _unbounded = conn.without_sqlite_timeout();
        match &mut *conn {
            DbConnection::Postgresql(pg) => pg.transaction(|pg| {
                // The statement timeout guards the service's reads; a batch of an import is
                // as long as it is, and cancelling it would only make the import fail.
                pg.batch_execute(&format!(
                    "SET LOCAL statement_timeout = 0; {}",
                    create_staging(Backend::Postgres)
                ))?;
                diesel::copy_from(import_staging::table)
                    .from_insertable(rows)
                    .execute(pg)?;
                Ok(diesel::sql_query(apply_staged()).execute(pg)?)
            }),
            DbConnection::Sqlite(sqlite) => {
                sqlite.batch_execute(&format!(
                    "PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}; \
                     PRAGMA wal_autocheckpoint = {SQLITE_BULK_CHECKPOINT_PAGES}; {}",
                    create_staging(Backend::Sqlite)
                ))?;
                let written = sqlite.immediate_transaction(|sqlite| {
                    for row in &rows {
                        diesel::insert_into(import_staging::table)
                            .values(row)
                            .execute(sqlite)?;
                    }
                    let written = diesel::sql_query(apply_staged()).execute(sqlite)?;
                    sqlite.batch_execute("DELETE FROM import_staging")?;
                    Ok::<_, StorageError>(written)
                });
                sqlite.batch_execute(&format!(
                    "PRAGMA cache_size = -{SQLITE_DEFAULT_CACHE_KIB}; \
                     PRAGMA wal_autocheckpoint = {SQLITE_DEFAULT_CHECKPOINT_PAGES}"
                ))?;
                written
            }
        }
    }
}

/// The rows of `records`, one per tenant and id (the last of each), in key order.
fn last_of_each_key(records: &[BackupRecord]) -> Vec<StagedItemRow<'_>> {
    let mut rows: Vec<StagedItemRow<'_>> = records.iter().map(StagedItemRow::from).collect();
    // A stable sort keeps equal keys in input order; reversing first makes the last of them
    // come first, where `dedup_by` keeps it.
    rows.reverse();
    rows.sort_by(|a, b| (a.project_id, a.id).cmp(&(b.project_id, b.id)));
    rows.dedup_by(|later, kept| (later.project_id, later.id) == (kept.project_id, kept.id));
    rows
}

/// Upserts a stream of batches on several connections at once. PostgreSQL runs each
/// connection's statements in a process of its own, so a second writer puts a second core to
/// work on index maintenance, which is what an import spends its time on. SQLite has one
/// writer at a time and always gets one.
///
/// Every item goes to the writer its tenant and id hash to, and each writer applies its share
/// of the batches in the order they were given: two versions of one item are written by one
/// writer, in order, so the last one given wins as with a single writer. Writers never touch
/// the same items, so they cannot deadlock on them, and the counter rows they share are
/// touched in key order by the triggers.
///
/// Each writer's share of a batch is one transaction: when a writer fails, what the others
/// wrote stays written (as with a single writer, the batches before a failure stay written),
/// and running the same import again completes it.
pub struct BulkWriter {
    shares: Vec<std::sync::mpsc::SyncSender<Vec<BackupRecord>>>,
    writers: Vec<std::thread::JoinHandle<Result<BulkTotals, StorageError>>>,
}

/// What a [`BulkWriter`] stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BulkTotals {
    /// Rows inserted or changed; the other distinct items were stored as they are already.
    pub written: u64,
    /// Items left out because a later item of the same batch has the same tenant and id (the
    /// last one wins).
    pub superseded: u64,
}

impl BulkWriter {
    /// Starts `writers` writer threads (one on SQLite, at most the pool's size on PostgreSQL)
    /// on `repository`; `on_written` hears, from the writer threads, how many items each
    /// stored share held.
    pub fn start(
        repository: &Repository,
        writers: usize,
        on_written: impl Fn(u64) + Send + Sync + 'static,
    ) -> Self {
        // More writers than pooled connections would only wait for one, and fail after the
        // pool timeout.
        let writers = match repository.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => writers.clamp(1, repository.pool_state().max as usize),
        };
        let on_written = std::sync::Arc::new(on_written);
        let (shares, writers) = (0..writers)
            .map(|_| {
                // One share in flight per writer beside the one being written.
                let (share, receiver) = std::sync::mpsc::sync_channel::<Vec<BackupRecord>>(1);
                let repository = repository.clone();
                let on_written = std::sync::Arc::clone(&on_written);
                let writer = std::thread::spawn(move || {
                    let mut totals = BulkTotals::default();
                    for records in receiver {
                        let rows = last_of_each_key(&records);
                        totals.superseded += (records.len() - rows.len()) as u64;
                        totals.written += repository.upsert_rows(rows)? as u64;
                        on_written(records.len() as u64);
                    }
                    Ok(totals)
                });
                (share, writer)
            })
            .unzip();
        Self { shares, writers }
    }

    /// How many writer threads run.
    pub fn writers(&self) -> usize {
        self.shares.len()
    }

    /// Hands `batch` to the writers, each item to its own. Blocks while they are busy. An
    /// error means a writer has stopped; [`BulkWriter::finish`] tells why.
    pub fn write(&self, batch: Vec<BackupRecord>) -> Result<(), WriterStopped> {
        if self.shares.len() == 1 {
            return self.shares[0].send(batch).map_err(|_| WriterStopped);
        }
        let mut shares: Vec<Vec<BackupRecord>> = (0..self.shares.len())
            .map(|_| Vec::with_capacity(batch.len() / self.shares.len() + 1))
            .collect();
        for record in batch {
            let writer = writer_of(&record, self.shares.len());
            shares[writer].push(record);
        }
        for (sender, share) in self.shares.iter().zip(shares) {
            if !share.is_empty() {
                sender.send(share).map_err(|_| WriterStopped)?;
            }
        }
        Ok(())
    }

    /// Waits for every batch given to be written; returns what was stored, or the first
    /// writer's error.
    pub fn finish(self) -> Result<BulkTotals, StorageError> {
        drop(self.shares);
        let mut totals = BulkTotals::default();
        let mut failure = None;
        for writer in self.writers {
            match writer.join() {
                Ok(Ok(share)) => {
                    totals.written += share.written;
                    totals.superseded += share.superseded;
                }
                Ok(Err(error)) => {
                    failure.get_or_insert(error);
                }
                Err(_) => {
                    failure
                        .get_or_insert(StorageError::Query("a bulk writer thread panicked".into()));
                }
            }
        }
        failure.map_or(Ok(totals), Err)
    }
}

/// A writer has stopped on an error; [`BulkWriter::finish`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a bulk writer stopped on an error")]
pub struct WriterStopped;

/// The writer of an item: a hash of its tenant and id, the same for every version of it.
fn writer_of(record: &BackupRecord, writers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same item maps to the same writer throughout a run.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record.project_id.as_str().hash(&mut hasher);
    record.id.as_str().hash(&mut hasher);
    (hasher.finish() % writers as u64) as usize
}
