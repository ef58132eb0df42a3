//! The backup item repository: every query the service makes, on either backend, grouped by
//! what it is for: `read` (count, list, show), `write` (the ingest API and deletions, in one
//! transaction each), `bulk` (imports), `maintenance` (counters checked and rebuilt, statistics,
//! plans). The SQL they share is in `crate::sql`.

pub(crate) mod bulk;
pub(crate) mod initial_load;
mod maintenance;
pub(crate) mod read;
pub(crate) mod write;

use csbs_domain::BackupStatus;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::connection::{Backend, DatabaseUrl, DbConnection, PoolMode};
use crate::migrations;
use crate::pool::{build_pool, EffectivePoolMode, Pool, PoolSettings};
use crate::StorageError;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPage {
    /// The item documents (JSON text), in order.
    pub documents: Vec<String>,
    /// The id of the last item of the page: the `marker` of the next one.
    pub last_id: Option<String>,
    /// Whether at least one more item follows this page.
    pub has_more: bool,
}

/// One stored item, as `show` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub status: BackupStatus,
    /// The item document (JSON text).
    pub document: String,
}

/// Access to the backup items. Cheap to clone: clones share one pool.
///
/// Every method blocks on the database; call them from a blocking thread.
#[derive(Clone)]
pub struct Repository {
    pub(crate) pool: Pool,
    backend: Backend,
    /// Whether PostgreSQL server sessions last as long as the connections, or one transaction.
    pool_mode: EffectivePoolMode,
    /// Callers waiting for a connection right now (r2d2 does not say).
    waiting: Arc<AtomicI64>,
}

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections.
    pub connections: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub waiting: i64,
    /// The pool's size limit.
    pub max: u32,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// A checked-out connection, used as the `DbConnection` it holds.
pub struct Checkout(r2d2::PooledConnection<crate::pool::ConnectionManager>);

impl Checkout {
    /// Suspends SQLite's statement timeout while the guard lives (see
    /// [`crate::pool::PooledDb::without_sqlite_timeout`]).
    pub(crate) fn without_sqlite_timeout(&self) -> crate::sqlite_timeout::Suspended {
        self.0.without_sqlite_timeout()
    }
}

impl Checkout {
    /// Prepared statements this connection has cached so far.
    pub fn cached_statements(&self) -> usize {
        self.0.cached_statements()
    }
}

impl std::ops::Deref for Checkout {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.0
    }
}

impl Repository {
    /// A repository over a new pool for `url`. Does not connect: see [`Repository::migrate`].
    pub fn open(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StorageError> {
        let (pool, pool_mode) = build_pool(url, settings)?;
        Ok(Self {
            pool,
            pool_mode,
            backend: url.backend(),
            waiting: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The backend behind this repository.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether PostgreSQL server sessions last as long as the connections, or one transaction.
    pub fn pool_mode(&self) -> PoolMode {
        self.pool_mode.get()
    }

    /// The pool's current state.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            waiting: self.waiting.load(Ordering::Relaxed),
            max: self.pool.max_size(),
        }
    }

    /// A connection of the pool, held until the [`Checkout`] is dropped: for work the
    /// repository has no method for (operators' SQL, tests that hold or inspect a connection).
    /// Waits at most the pool's timeout, as every query does.
    pub fn connection(&self) -> Result<Checkout, StorageError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let connection = self.pool.get();
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Ok(Checkout(connection?))
    }

    /// Applies pending migrations; returns how many were applied.
    pub fn migrate(&self) -> Result<usize, StorageError> {
        let mut conn = self.connection()?;
        // A migration may rewrite or index the whole table.
        let _unbounded = conn.without_sqlite_timeout();
        migrations::run_migrations(&mut conn)
    }

    /// Whether the database answers and every migration is applied.
    pub fn is_ready(&self) -> Result<bool, StorageError> {
        migrations::migrations_complete(&mut *self.connection()?)
    }

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> Result<(), StorageError> {
        use diesel::connection::SimpleConnection;
        self.connection()?.batch_execute("SELECT 1")?;
        Ok(())
    }
}
