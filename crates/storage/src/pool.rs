//! The connection pool, sized and timed so that a database outage costs each request at most
//! the checkout timeout, never r2d2's default 30 seconds.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, InstrumentationEvent};
use diesel::r2d2::R2D2Connection;
use diesel::Connection;

use crate::connection::{
    establish, lent_per_transaction, ConnectionSettings, DatabaseUrl, DbConnection, PoolMode,
};
use crate::sqlite_timeout::{self, StatementClock, Suspended};
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
    /// Connections are closed this long after they were opened (on their next return to the
    /// pool), so that no session state, and no connection to a server that has since been
    /// demoted or replaced, lives for ever.
    pub max_lifetime: Duration,
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
            max_lifetime: Duration::from_secs(1800),
            connection: ConnectionSettings::default(),
        }
    }
}

/// A connection used successfully this recently is handed out without the checkout query:
/// a pool that is busy pays no extra round trip per request, and one that sat idle is
/// checked before use. A connection that dies inside the window fails one query, is marked
/// broken by that failure, and is dropped on its return.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// Prepared statements one connection may keep before it is retired. diesel caches one per
/// distinct SQL text for the connection's lifetime, with no limit of its own, and so does the
/// database server's session: a connection that has seen this many query shapes (far more than
/// the service's usual mix) is closed on its return to the pool and replaced by a fresh one, so
/// that callers varying their filters without end cannot grow either side's memory.
pub const MAX_CACHED_STATEMENTS: usize = 256;

/// A pooled connection and what the pool knows of its health.
pub struct PooledDb {
    /// SQLite's statement timeout; declared before `connection`, so that it is removed
    /// before the connection closes.
    _sqlite_timeout: Option<sqlite_timeout::Installed>,
    /// The deadline of the statement running now (SQLite).
    clock: Arc<StatementClock>,
    connection: DbConnection,
    /// Set by the connection's instrumentation when a query fails because the connection died.
    lost: Arc<AtomicBool>,
    /// Prepared statements diesel has cached on this connection.
    cached_statements: Arc<AtomicUsize>,
    /// When the connection last proved to work.
    verified_at: Instant,
    /// When the connection was opened.
    opened_at: Instant,
}

impl PooledDb {
    /// Prepared statements diesel has cached on this connection so far.
    pub fn cached_statements(&self) -> usize {
        self.cached_statements.load(Ordering::Relaxed)
    }

    /// Suspends SQLite's statement timeout while the guard lives, for work that must read or
    /// write everything (PostgreSQL's equivalent is `SET LOCAL statement_timeout = 0`, which
    /// that work sets itself).
    pub(crate) fn without_sqlite_timeout(&self) -> Suspended {
        self.clock.suspend()
    }
}

impl Deref for PooledDb {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.connection
    }
}

impl DerefMut for PooledDb {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.connection
    }
}

/// What a connection's instrumentation keeps up to date.
struct Watched {
    /// Set when a query fails because the connection died (or must not be used again).
    lost: Arc<AtomicBool>,
    /// Prepared statements cached.
    cached: Arc<AtomicUsize>,
    /// Armed with the statement timeout when a statement starts (read on SQLite only).
    clock: Arc<StatementClock>,
    statement_timeout: Duration,
}

/// Watches every query: its outcome for a dead connection, the statements cached, and the
/// deadline of the one running.
fn watch(connection: &mut DbConnection, watched: Watched) {
    let Watched {
        lost,
        cached,
        clock,
        statement_timeout,
    } = watched;
    let watcher = move |event: InstrumentationEvent<'_>| match event {
        InstrumentationEvent::StartQuery { .. } => clock.arm(statement_timeout),
        InstrumentationEvent::FinishQuery { error, .. } => {
            clock.disarm();
            if error.is_some_and(crate::errors::connection_lost) {
                lost.store(true, Ordering::Relaxed);
            }
        }
        InstrumentationEvent::CacheQuery { .. } => {
            cached.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    };
    match connection {
        DbConnection::Postgresql(pg) => pg.set_instrumentation(watcher),
        DbConnection::Sqlite(sqlite) => sqlite.set_instrumentation(watcher),
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
    max_lifetime: Duration,
    /// Whether the first PostgreSQL connection has been probed for transaction pooling.
    probed: AtomicBool,
    /// The mode connections are opened in; shared with the repository, which adapts its
    /// maintenance to it.
    mode: EffectivePoolMode,
}

impl ConnectionManager {
    /// A manager for `url` whose connections are retired after `max_lifetime`.
    pub fn new(url: DatabaseUrl, settings: ConnectionSettings, max_lifetime: Duration) -> Self {
        Self {
            url,
            max_lifetime,
            probed: AtomicBool::new(false),
            mode: EffectivePoolMode {
                configured: settings.pool_mode,
                lent_per_transaction: Arc::new(AtomicBool::new(false)),
            },
            settings,
        }
    }

    /// The pool mode the connections are opened in, now and later.
    pub fn pool_mode(&self) -> EffectivePoolMode {
        self.mode.clone()
    }

    /// Probes the first PostgreSQL connection of a pool configured for `session` (see
    /// [`lent_per_transaction`]); seen lent per transaction, this and every later connection
    /// prepares no named statements, so that none runs another client's statement of the
    /// same name.
    fn probe(&self, connection: &mut DbConnection) {
        let DbConnection::Postgresql(pg) = connection else {
            return;
        };
        if self.mode.get() != PoolMode::Session || self.probed.load(Ordering::Relaxed) {
            return;
        }
        match lent_per_transaction(&self.url, &self.settings, pg) {
            Some(lent) => {
                self.probed.store(true, Ordering::Relaxed);
                if lent {
                    self.mode
                        .lent_per_transaction
                        .store(true, Ordering::Relaxed);
                    pg.set_prepared_statement_cache_size(CacheSize::Disabled);
                    tracing::warn!(
                        "PostgreSQL server sessions are lent per transaction (a pooler such as \
                         PgBouncer in pool_mode = transaction), but database.pool_mode is \
                         \"session\": prepared statements are off from now on; set \
                         database.pool_mode = \"transaction\" (CSBS__DATABASE__POOL_MODE) and give \
                         the role a statement_timeout on the server"
                    );
                }
            }
            None => tracing::debug!("could not tell whether server sessions are pooled"),
        }
    }

    /// The settings a new connection is opened with.
    fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            pool_mode: self.mode.get(),
            ..self.settings.clone()
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledDb;
    type Error = StorageError;

    fn connect(&self) -> Result<PooledDb, StorageError> {
        let mut connection = establish(&self.url, &self.connection_settings())?;
        self.probe(&mut connection);
        let clock = Arc::new(StatementClock::default());
        let sqlite_timeout = match &connection {
            // `establish` has just opened it, on this thread.
            DbConnection::Sqlite(_) => {
                let installed = sqlite_timeout::install(&clock);
                if installed.is_none() {
                    tracing::warn!("SQLite statements on this connection cannot be timed out");
                }
                installed
            }
            DbConnection::Postgresql(_) => None,
        };
        let lost = Arc::new(AtomicBool::new(false));
        let cached_statements = Arc::new(AtomicUsize::new(0));
        watch(
            &mut connection,
            Watched {
                lost: Arc::clone(&lost),
                cached: Arc::clone(&cached_statements),
                clock: Arc::clone(&clock),
                statement_timeout: self.settings.statement_timeout,
            },
        );
        Ok(PooledDb {
            _sqlite_timeout: sqlite_timeout,
            clock,
            connection,
            lost,
            cached_statements,
            verified_at: Instant::now(),
            opened_at: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut PooledDb) -> Result<(), StorageError> {
        if conn.verified_at.elapsed() < TRUSTED_FOR {
            return Ok(());
        }
        conn.connection.ping().map_err(StorageError::from)?;
        conn.verified_at = Instant::now();
        Ok(())
    }

    fn has_broken(&self, conn: &mut PooledDb) -> bool {
        // r2d2 retires idle connections past their lifetime only every 30 s; a busy pool's
        // connections are rarely idle then, so their age is checked on every return as well.
        if conn.opened_at.elapsed() >= self.max_lifetime {
            tracing::debug!("connection retired: past its lifetime");
            return true;
        }
        let cached = conn.cached_statements.load(Ordering::Relaxed);
        if cached > MAX_CACHED_STATEMENTS {
            tracing::debug!(cached, "connection retired: too many prepared statements");
            return true;
        }
        let broken = conn.lost.load(Ordering::Relaxed) || conn.connection.is_broken();
        if !broken {
            conn.verified_at = Instant::now();
        }
        broken
    }
}

/// The pool mode a pool's connections are opened in: the configured one, or `Transaction` once
/// its probe has seen server sessions lent per transaction.
#[derive(Debug, Clone)]
pub struct EffectivePoolMode {
    configured: PoolMode,
    lent_per_transaction: Arc<AtomicBool>,
}

impl EffectivePoolMode {
    /// The mode now.
    pub fn get(&self) -> PoolMode {
        if self.lent_per_transaction.load(Ordering::Relaxed) {
            PoolMode::Transaction
        } else {
            self.configured
        }
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

/// Builds the pool without connecting (the service starts while the database is down and
/// recovers by itself when it comes back), with the mode its connections are opened in.
pub fn build_pool(
    url: &DatabaseUrl,
    settings: &PoolSettings,
) -> Result<(Pool, EffectivePoolMode), StorageError> {
    let max_size = match url {
        DatabaseUrl::Sqlite(_) => settings.max_size.clamp(1, 4),
        DatabaseUrl::Postgres(_) => settings.max_size.max(1),
    };
    let manager = ConnectionManager::new(
        url.clone(),
        settings.connection.clone(),
        settings.max_lifetime,
    );
    let mode = manager.pool_mode();
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(settings.min_idle.min(max_size)))
        .connection_timeout(settings.connection_timeout)
        .idle_timeout(Some(settings.idle_timeout))
        .max_lifetime(Some(settings.max_lifetime))
        .test_on_check_out(true)
        .error_handler(Box::new(LogErrors))
        .build_unchecked(manager);
    Ok((pool, mode))
}
