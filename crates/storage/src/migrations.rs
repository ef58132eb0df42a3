//! Migrations, embedded in the binary: one folder per backend under `migrations/`.

use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::connection::{without_statement_timeout, DbConnection};
use crate::StorageError;

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// A fixed key for `pg_advisory_lock`: replicas starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x4353_4253_6d69_6772; // "CSBSmigr"

/// Applies every pending migration and returns how many were applied.
///
/// Several processes migrating one database at once do not race: on PostgreSQL the work holds
/// a session advisory lock, on SQLite a write transaction; the others wait and then find
/// nothing left to do.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StorageError> {
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration(e.to_string());
    match conn {
        // A migration that backfills or indexes a large table, and a replica waiting for
        // another's migrations, take longer than the statement timeout meant for the
        // service's reads.
        DbConnection::Postgresql(pg) => without_statement_timeout(pg, |pg| {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let applied = pg
                .run_pending_migrations(POSTGRES)
                .map(|v| v.len())
                .map_err(failed);
            let unlocked =
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(pg);
            let applied = applied?;
            unlocked?;
            Ok(applied)
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
