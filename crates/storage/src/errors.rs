//! The storage error type, and the one place where database errors are classified.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong below the repository.
///
/// The HTTP layer maps each variant once: `Unavailable` and `Timeout` are 503 with
/// `Retry-After`, `UnknownMarker` is a 400, everything else an opaque 500 whose cause is only
/// logged.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached, is starting or stopping, or the pool had no connection
    /// free within its timeout.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The statement ran longer than the configured statement timeout and was cancelled.
    #[error("the query was cancelled by the statement timeout")]
    Timeout,
    /// The `marker` of a list names no item in scope.
    #[error("the marker names no item")]
    UnknownMarker,
    /// The database URL or a pool setting is unusable.
    #[error("invalid database configuration: {0}")]
    Configuration(String),
    /// A migration failed to apply.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A stored row does not hold what the schema promises.
    #[error("corrupt row: {0}")]
    CorruptRow(String),
    /// Any other failed query.
    #[error("database error: {0}")]
    Query(String),
}

impl StorageError {
    /// Whether retrying later may succeed (the caller should see 503, not 500).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout)
    }
}

/// Messages by which PostgreSQL and SQLite say "not now" rather than "never": the server is
/// going away or coming up, the connection broke, the file is locked by another writer, or a
/// transaction lost a deadlock or serialization conflict and may simply be retried.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "no connection to the server",
    "connection to server",
    "could not connect",
    "the database system is",
    "could not receive data",
    "could not send data",
    "ssl syscall",
    "database is locked",
    "database is busy",
    "deadlock detected",
    "could not serialize access",
];

/// Messages that mean the connection itself is gone: it must not be used again.
const CONNECTION_LOST_MESSAGES: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "no connection to the server",
    "connection to server",
    "could not receive data",
    "could not send data",
    "ssl syscall",
];

/// Whether `error` means the connection it came from is dead.
pub(crate) fn connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            CONNECTION_LOST_MESSAGES.iter().any(|m| message.contains(m))
        }
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

impl From<DieselError> for StorageError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            DieselError::DatabaseError(_, info) => {
                let message = info.message().to_ascii_lowercase();
                if message.contains("statement timeout") {
                    Self::Timeout
                } else if UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m)) {
                    Self::Unavailable(info.message().to_owned())
                } else {
                    Self::Query(error.to_string())
                }
            }
            DieselError::BrokenTransactionManager => Self::Unavailable(error.to_string()),
            _ => Self::Query(error.to_string()),
        }
    }
}

impl From<r2d2::Error> for StorageError {
    fn from(error: r2d2::Error) -> Self {
        Self::Unavailable(format!("no database connection: {error}"))
    }
}
