//! The connection pool, sized and timed so that a database outage costs each request at most
//! the checkout timeout, never r2d2's default 30 seconds.

use std::time::Duration;

use diesel::r2d2::R2D2Connection;

use crate::connection::{establish, ConnectionSettings, DatabaseUrl, DbConnection};
use crate::StorageError;

/// Pool sizing and timing.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections at most. SQLite gets at most 4: it has one writer at a time anyway.
    pub max_size: u32,
    /// Idle connections kept open (and re-opened in the background after an outage).
    pub min_idle: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub connection_timeout: Duration,
    /// Connections are closed after this long idle.
    pub idle_timeout: Duration,
    /// How each connection is set up.
    pub connection: ConnectionSettings,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 8,
            min_idle: 2,
            connection_timeout: Duration::from_millis(1500),
            idle_timeout: Duration::from_secs(300),
            connection: ConnectionSettings::default(),
        }
    }
}

/// The pool type the repository uses.
pub type Pool = r2d2::Pool<ConnectionManager>;

/// Opens connections for r2d2, choosing the backend from the URL rather than trying each
/// backend in turn, so that the database's real error comes back.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    settings: ConnectionSettings,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl, settings: ConnectionSettings) -> Self {
        Self { url, settings }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = StorageError;

    fn connect(&self) -> Result<DbConnection, StorageError> {
        establish(&self.url, &self.settings)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StorageError> {
        conn.ping().map_err(StorageError::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Logs connection failures of the pool's background work with their real cause.
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<StorageError> for LogErrors {
    fn handle_error(&self, error: StorageError) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// Builds the pool without connecting: the service starts while the database is down and
/// recovers by itself when it comes back.
pub fn build_pool(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Pool, StorageError> {
    let max_size = match url {
        DatabaseUrl::Sqlite(_) => settings.max_size.clamp(1, 4),
        DatabaseUrl::Postgres(_) => settings.max_size.max(1),
    };
    let manager = ConnectionManager::new(url.clone(), settings.connection.clone());
    Ok(r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(settings.min_idle.min(max_size)))
        .connection_timeout(settings.connection_timeout)
        .idle_timeout(Some(settings.idle_timeout))
        .test_on_check_out(true)
        .error_handler(Box::new(LogErrors))
        .build_unchecked(manager))
}
