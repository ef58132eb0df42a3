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
    /// The database accepts no writes now: a read-only transaction or server (a standby after
    /// a failover, `default_transaction_read_only`). Reads may still work.
    #[error("the database is read-only: {0}")]
    ReadOnly(String),
    /// The database's storage is full (SQLite's file system, PostgreSQL's disk). Reads still
    /// work; writes may succeed again once space is freed.
    #[error("the database's storage is full: {0}")]
    StorageFull(String),
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
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout | Self::ReadOnly(_) | Self::StorageFull(_)
        )
    }

    /// A short, fixed name of the kind of failure, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Timeout => "timeout",
            Self::ReadOnly(_) => "read_only",
            Self::StorageFull(_) => "storage_full",
            Self::UnknownMarker => "unknown_marker",
            Self::Configuration(_) => "configuration",
            Self::Migration(_) => "migration",
            Self::CorruptRow(_) => "corrupt_row",
            Self::Query(_) => "other",
        }
    }
}

/// Messages by which PostgreSQL (SQLSTATE 25006, and a standby in recovery) and SQLite
/// (`SQLITE_READONLY`) refuse a write that may be accepted later or elsewhere.
const READ_ONLY_MESSAGES: &[&str] = &[
    "read-only transaction",
    "recovery is in progress",
    "attempt to write a readonly database",
];

/// Messages by which the databases say their storage is full: SQLite's `SQLITE_FULL` and
/// `SQLITE_IOERR` (what a full file system gives it mid-write), PostgreSQL's `disk_full`
/// (53100) and the "could not extend / write" errors of a full disk.
const STORAGE_FULL_MESSAGES: &[&str] = &[
    "database or disk is full",
    "disk i/o error",
    "no space left on device",
    "could not extend file",
];

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

/// What PostgreSQL says when a connection's prepared statements are not in the server session
/// that runs its next statement: the connection goes through a pooler that lends sessions per
/// transaction (PgBouncer `pool_mode = transaction`) while `database.pool_mode` is `session`.
/// (diesel names its statements `__diesel_stmt_N` on every connection alike.)
fn pooled_per_transaction(message: &str) -> bool {
    message.contains("prepared statement \"__diesel_stmt_")
        && (message.contains("does not exist") || message.contains("already exists"))
}

/// The advice a [`pooled_per_transaction`] error is answered with.
const POOLED_PER_TRANSACTION: &str = "the connection's prepared statements are not in its \
    server session: PostgreSQL is reached through a pooler in transaction mode; set \
    database.pool_mode = \"transaction\" (CSBS__DATABASE__POOL_MODE)";

/// Whether the connection `error` came from must not be used again: it is dead, or it is in a
/// state that outlives the fault (a read-only session stays read-only after its server is
/// writable again, and one connected to a demoted primary stays connected to a standby).
pub(crate) fn connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            CONNECTION_LOST_MESSAGES
                .iter()
                .chain(READ_ONLY_MESSAGES)
                .any(|m| message.contains(m))
                || pooled_per_transaction(&message)
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
            DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, info) => {
                Self::ReadOnly(info.message().to_owned())
            }
            DieselError::DatabaseError(_, info) => {
                let message = info.message().to_ascii_lowercase();
                let any = |list: &[&str]| list.iter().any(|m| message.contains(m));
                if message.contains("statement timeout") || message == "interrupted" {
                    Self::Timeout
                } else if any(READ_ONLY_MESSAGES) {
                    Self::ReadOnly(info.message().to_owned())
                } else if any(STORAGE_FULL_MESSAGES) {
                    Self::StorageFull(info.message().to_owned())
                } else if pooled_per_transaction(&message) {
                    Self::Unavailable(POOLED_PER_TRANSACTION.to_owned())
                } else if any(UNAVAILABLE_MESSAGES) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database error with `message`, as diesel reports one of kind `kind`.
    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn database_errors_are_classified_once() {
        use DatabaseErrorKind::{ReadOnlyTransaction, Unknown};
        let cases = [
            (
                ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
                "read_only",
                true,
            ),
            (
                Unknown,
                "cannot execute UPDATE in a read-only transaction",
                "read_only",
                true,
            ),
            (Unknown, "recovery is in progress", "read_only", true),
            (
                Unknown,
                "attempt to write a readonly database",
                "read_only",
                true,
            ),
            (Unknown, "database or disk is full", "storage_full", false),
            (Unknown, "disk I/O error", "storage_full", false),
            (
                Unknown,
                "could not extend file \"base/1/2\": No space left on device",
                "storage_full",
                false,
            ),
            (
                Unknown,
                "canceling statement due to statement timeout",
                "timeout",
                false,
            ),
            (Unknown, "interrupted", "timeout", false),
            (
                Unknown,
                "terminating connection due to administrator command",
                "unavailable",
                true,
            ),
            (Unknown, "database is locked", "unavailable", false),
            (
                Unknown,
                "prepared statement \"__diesel_stmt_3\" does not exist",
                "unavailable",
                true,
            ),
            (
                Unknown,
                "prepared statement \"__diesel_stmt_0\" already exists",
                "unavailable",
                true,
            ),
            (
                Unknown,
                "prepared statement \"mine\" does not exist",
                "other",
                false,
            ),
            (Unknown, "syntax error at or near \"SELEC\"", "other", false),
        ];
        for (kind, message, expected, lost) in cases {
            let error = database_error(kind, message);
            assert_eq!(connection_lost(&error), lost, "{message}");
            let classified = StorageError::from(error);
            assert_eq!(classified.kind(), expected, "{message}");
            assert_eq!(classified.is_transient(), expected != "other", "{message}");
        }
    }
}
