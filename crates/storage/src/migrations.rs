//! Migrations, embedded in the binary: one folder per backend under `migrations/`.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::connection::DbConnection;
use crate::StorageError;

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// A fixed key for `pg_advisory_xact_lock`: replicas starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x4353_4253_6d69_6772; // "CSBSmigr"

/// Applies every pending migration and returns how many were applied.
///
/// Several processes migrating one database at once do not race: the whole run is one
/// transaction that first takes a lock (on PostgreSQL a transaction-scoped advisory lock, on
/// SQLite the write lock); the others wait and then find nothing left to do. Nothing of it
/// outlives the transaction, so it works the same through a pooler that lends server sessions
/// per transaction (a session lock could be left held on a pooled session, for ever).
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StorageError> {
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration(e.to_string());
    match conn {
        // A migration that backfills or indexes a large table, and a replica waiting for
        // another's migrations, take longer than the statement timeout meant for the
        // service's reads. (Each migration's own transaction becomes a savepoint.)
        DbConnection::Postgresql(pg) => pg.transaction(|pg| {
            pg.batch_execute(&format!(
                "SET LOCAL statement_timeout = 0; \
                 SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))?;
            pg.run_pending_migrations(POSTGRES)
                .map(|v| v.len())
                .map_err(failed)
        }),
        // SQLite has no advisory locks: the whole run is one write transaction taken at
        // once (`BEGIN IMMEDIATE`), so a second process migrating the same file waits for the
        // first within the busy timeout and then finds nothing left to do, instead of both
        // finding the same migrations pending. (Each migration's own transaction becomes a
        // savepoint inside it.)
        DbConnection::Sqlite(sqlite) => sqlite.immediate_transaction(|sqlite| {
            sqlite
                .run_pending_migrations(SQLITE)
                .map(|v| v.len())
                .map_err(failed)
        }),
    }
}

/// Whether every migration has been applied.
pub fn migrations_complete(conn: &mut DbConnection) -> Result<bool, StorageError> {
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration(e.to_string());
    let pending = match conn {
        DbConnection::Postgresql(pg) => pg.has_pending_migration(POSTGRES).map_err(failed)?,
        DbConnection::Sqlite(sqlite) => sqlite.has_pending_migration(SQLITE).map_err(failed)?,
    };
    Ok(!pending)
}
