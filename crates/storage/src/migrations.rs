//! Migrations, embedded in the binary: one folder per backend under `migrations/`.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::connection::DbConnection;
use crate::StorageError;

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// A fixed key for `pg_advisory_lock`: replicas starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x4353_4253_6d69_6772; // "CSBSmigr"

/// Applies every pending migration and returns how many were applied.
///
/// On PostgreSQL the work holds a session advisory lock, so that several replicas starting at
/// once do not race; the others wait and then find nothing left to do.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StorageError> {
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration(e.to_string());
    match conn {
        DbConnection::Postgresql(pg) => {
            // A migration that backfills or indexes a large table, and a replica waiting for
            // another's migrations, take longer than the statement timeout meant for the
            // service's reads: it is off meanwhile, and put back as it was afterwards.
            let timeout: SettingRow =
                diesel::sql_query("SELECT current_setting('statement_timeout') AS value")
                    .get_result(pg)?;
            pg.batch_execute("SET statement_timeout = 0")?;
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let applied = pg
                .run_pending_migrations(POSTGRES)
                .map(|v| v.len())
                .map_err(failed);
            let unlocked =
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(pg);
            let restored = diesel::sql_query("SELECT set_config('statement_timeout', $1, false)")
                .bind::<diesel::sql_types::Text, _>(&timeout.value)
                .execute(pg);
            let applied = applied?;
            unlocked?;
            restored?;
            Ok(applied)
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE)
            .map(|v| v.len())
            .map_err(failed),
    }
}

/// One setting's value, as `current_setting` gives it.
#[derive(QueryableByName)]
struct SettingRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
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
