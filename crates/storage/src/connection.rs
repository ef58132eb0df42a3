//! Connections: the backend chosen by the URL scheme, and every connection set up the same way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use secrecy::{ExposeSecret, SecretString};

use crate::StorageError;

/// A connection to either backend. Queries written against it run unchanged on both; code
/// that must differ (upserts, advisory locks) matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A parsed database URL: `postgres://…` / `postgresql://…`, or `sqlite://PATH`.
///
/// The scheme is required so that a typo never silently creates an empty SQLite file.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// A libpq connection URL; may hold a password, so it is a secret.
    Postgres(SecretString),
    /// The path of the SQLite file.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Parses `url`; the error never repeats the URL, which may hold a password.
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(SecretString::from(url.to_owned())));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains(":memory:") || path.starts_with("file:") {
                return Err(StorageError::Configuration(
                    "sqlite:// needs a file path (an in-memory database would be a different \
                     database on every pooled connection)"
                        .into(),
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(StorageError::Configuration(
            "the database URL must start with postgres://, postgresql:// or sqlite://".into(),
        ))
    }

    /// The backend the URL selects.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact_password(url.expose_secret()),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let masked = if user_info.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            let tail = redact_query_password(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", redact_query_password(tail)),
    }
}

/// libpq also takes `?password=…` in the query string.
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            if pair.starts_with("password=") {
                "password=***".to_owned()
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// How the service's connections reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// Each connection is a server session of its own for as long as it is open: PostgreSQL
    /// itself, or a pooler in session mode (PgBouncer `pool_mode = session`). Statements are
    /// prepared once per connection and kept; the statement timeout is set per session.
    #[default]
    Session,
    /// Through a pooler that lends a server session for one transaction at a time (PgBouncer
    /// `pool_mode = transaction`), so nothing may outlive a transaction: statements are sent
    /// unnamed (parsed and run in one round trip, never kept), and the statement timeout is the
    /// server's own setting for the role or database (`ALTER ROLE … SET statement_timeout`),
    /// since a `SET` would stay on whichever server session ran it.
    Transaction,
}

impl PoolMode {
    /// The names the setting takes.
    pub const NAMES: [&'static str; 2] = ["session", "transaction"];

    /// The setting's name of this mode.
    pub fn name(self) -> &'static str {
        match self {
            Self::Session => Self::NAMES[0],
            Self::Transaction => Self::NAMES[1],
        }
    }

    /// `session` or `transaction`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Session, Self::Transaction]
            .into_iter()
            .find(|mode| mode.name() == name)
    }
}

/// How each new connection is set up.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Cancel any statement running longer than this (PostgreSQL: `statement_timeout`;
    /// SQLite: interrupted by a progress handler). Zero disables it.
    pub statement_timeout: Duration,
    /// Give up connecting after this long (PostgreSQL).
    pub connect_timeout: Duration,
    /// How long SQLite waits for a lock held by another writer before answering busy.
    pub sqlite_busy_timeout: Duration,
    /// Whether a PostgreSQL connection is a session of its own or lent per transaction.
    pub pool_mode: PoolMode,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            sqlite_busy_timeout: Duration::from_secs(5),
            pool_mode: PoolMode::Session,
        }
    }
}

/// Opens one connection to `url`, set up as every pooled connection is. The error is the
/// database's own (r2d2 can hide it), with no password in it.
pub fn establish(
    url: &DatabaseUrl,
    settings: &ConnectionSettings,
) -> Result<DbConnection, StorageError> {
    match url {
        DatabaseUrl::Postgres(secret) => {
            // libpq uses OpenSSL, which by default tears itself down in an `atexit` handler:
            // a process that exits while another thread is still inside libpq (the pool
            // opening a connection in the background) then crashed with SIGSEGV after its
            // work was done. Initialising OpenSSL first, as openssl-sys does, with
            // OPENSSL_INIT_NO_ATEXIT, leaves it to the operating system.
            openssl_sys::init();
            let url = with_libpq_defaults(secret.expose_secret(), settings);
            let mut conn = PgConnection::establish(&url)
                .map_err(|e| StorageError::Unavailable(scrub(&e.to_string(), secret)))?;
            match settings.pool_mode {
                // Set per session, not in the URL, so a URL with its own `options` keeps them.
                PoolMode::Session => conn
                    .batch_execute(&format!(
                        "SET statement_timeout = {}",
                        settings.statement_timeout.as_millis()
                    ))
                    .map_err(StorageError::from)?,
                PoolMode::Transaction => {
                    // A named statement prepared in one transaction may be missing from the
                    // server session of the next, or be another client's statement of the same
                    // name there.
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                    warn_without_server_timeout(&mut conn);
                }
            }
            Ok(DbConnection::Postgresql(conn))
        }
        DatabaseUrl::Sqlite(path) => {
            require_parent_dir(path)?;
            let path_text = path.to_str().ok_or_else(|| {
                StorageError::Configuration("the SQLite path is not valid UTF-8".into())
            })?;
            crate::sqlite_timeout::prepare();
            crate::sqlite_timeout::forget_opened();
            let mut conn = SqliteConnection::establish(path_text)
                .map_err(|e| StorageError::Unavailable(e.to_string()))?;
            // `case_sensitive_like` makes LIKE match PostgreSQL's (the `name` filter is
            // case-sensitive); WAL lets readers run beside the writer; the busy timeout turns a
            // short lock wait into a wait rather than an error; temporary tables (the bulk
            // upsert's staging table) and statement journals stay in memory instead of going
            // through a temporary file page by page.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; \
                 PRAGMA case_sensitive_like = ON; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
                settings.sqlite_busy_timeout.as_millis()
            ))
            .map_err(StorageError::from)?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// How long the probe of [`lent_per_transaction`] holds its second session's transaction
/// open for the first session's answer.
const PROBE_PATIENCE: Duration = Duration::from_secs(2);

/// Whether the server session behind `conn` is lent to other clients between transactions
/// (a pooler in transaction mode), as far as can be seen from here: `Some(true)` when it was
/// seen, `Some(false)` when the probe saw a session of its own, `None` when it could not tell.
///
/// `conn` prepares a statement under a fresh name; a second connection to `url` then opens a
/// transaction, which holds a server session, and looks for that statement while `conn` looks
/// for it too. With sessions of their own, only `conn` finds it. Lent per transaction, the
/// second connection is most often lent the very session `conn` just gave back (PgBouncer's
/// default, `server_round_robin = 0`, reuses the last one) and finds the statement, or `conn`
/// is lent another one and misses it. A pooler that lent each of them back its own session
/// would go unseen: hence `database.pool_mode`, and the runtime check of
/// `errors::pooled_per_transaction`.
pub(crate) fn lent_per_transaction(
    url: &DatabaseUrl,
    settings: &ConnectionSettings,
    conn: &mut PgConnection,
) -> Option<bool> {
    let name = format!("csbs_session_probe_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!("PREPARE {name} AS SELECT 1"))
        .ok()?;
    let DbConnection::Postgresql(mut other) = establish(url, settings).ok()? else {
        return None;
    };
    let sees = |pg: &mut PgConnection| {
        diesel::sql_query(
            "SELECT count(*)::text AS value FROM pg_prepared_statements WHERE name = $1",
        )
        .bind::<diesel::sql_types::Text, _>(&name)
        .get_result::<SettingRow>(pg)
        .ok()
        .map(|row| row.value != "0")
    };
    other.batch_execute("BEGIN").ok()?;
    let other_sees = sees(&mut other);
    let (answer, answered) = std::sync::mpsc::channel();
    let verdict = std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = answer.send(sees(conn));
        });
        // Waited for with the transaction open: a pool of one server session would lend it to
        // `conn` only after it ends, and the answer would then prove nothing.
        let own_sees = answered.recv_timeout(PROBE_PATIENCE).ok().flatten();
        let _ = other.batch_execute("ROLLBACK");
        match (own_sees, other_sees) {
            (Some(own), Some(other)) => Some(!own || other),
            _ => None,
        }
    });
    let _ = conn.batch_execute(&format!("DEALLOCATE {name}"));
    verdict
}

/// Warns when transaction pooling leaves statements without a timeout: the server's own
/// `statement_timeout` for the role or database is then the only one. Asked on the first
/// connection of the process only: every connection has the role's settings.
fn warn_without_server_timeout(conn: &mut PgConnection) {
    static ASKED: AtomicBool = AtomicBool::new(false);
    if ASKED.swap(true, Ordering::Relaxed) {
        return;
    }
    let unbounded = diesel::sql_query("SELECT current_setting('statement_timeout') AS value")
        .get_result::<SettingRow>(conn)
        .is_ok_and(|row| row.value == "0");
    if unbounded {
        tracing::warn!(
            "database.pool_mode = \"transaction\" and the server sets no statement_timeout: \
             statements run unbounded (set one with ALTER ROLE <role> SET statement_timeout = \
             '5s', or ALTER DATABASE)"
        );
    }
}

/// Adds a connect timeout and TCP keepalives unless the URL sets them, so that a dead server
/// is noticed in seconds rather than minutes.
fn with_libpq_defaults(url: &str, settings: &ConnectionSettings) -> String {
    let mut url = url.to_owned();
    let defaults = [
        (
            "connect_timeout",
            settings.connect_timeout.as_secs().max(1).to_string(),
        ),
        ("keepalives", "1".into()),
        ("keepalives_idle", "10".into()),
        ("keepalives_interval", "5".into()),
        ("keepalives_count", "3".into()),
    ];
    for (key, value) in defaults {
        let present = url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with(&format!("{key}="))));
        if !present {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("{key}={value}"));
        }
    }
    url
}

/// libpq's messages can quote the connection string; never let the password through.
fn scrub(message: &str, url: &SecretString) -> String {
    let url = url.expose_secret();
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(password) => message.replace(password, "***"),
        None => message.to_owned(),
    }
}

/// The SQLite file's folder must exist: a mistyped path is an error, not a folder made
/// somewhere (the data folder is made by the configuration's owner, see the api's settings).
fn require_parent_dir(path: &Path) -> Result<(), StorageError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
            Err(StorageError::Configuration(format!(
                "the folder {} of the SQLite file {} does not exist: create it, or point \
                 database.url (DATABASE_URL) elsewhere",
                parent.display(),
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

/// The first connection of a one-shot command (`migrate`, `import`, …), made at once: a
/// failure that waiting will not cure (refused, no such database or role, bad credentials, a
/// file that cannot be opened) is answered as one line that says what to do, rather than by
/// the pool's retries until its timeout. A failure that may pass (the server is starting, a
/// timeout) is `Ok`: the pool's retries are the answer to it.
pub fn check_reachable(
    url: &DatabaseUrl,
    settings: &ConnectionSettings,
) -> Result<(), StorageError> {
    let message = match establish(url, settings) {
        Ok(_) => return Ok(()),
        // Already says what to do (a SQLite folder that does not exist).
        Err(error @ StorageError::Configuration(_)) => return Err(error),
        // Connecting, or setting the session up (SQLite's pragmas meet a read-only or
        // foreign file there).
        Err(StorageError::Unavailable(message)) => message,
        Err(other) => other.to_string(),
    };
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match advice(url, &one_line) {
        Some(advice) => Err(StorageError::Unavailable(format!("{one_line}; {advice}"))),
        None => Ok(()),
    }
}

/// What to do about a permanent connection failure; `None` for one that may pass. The texts
/// are libpq's and SQLite's own.
fn advice(url: &DatabaseUrl, message: &str) -> Option<String> {
    let has = |text: &str| message.contains(text);
    let setting = "database.url (DATABASE_URL)";
    match url {
        DatabaseUrl::Postgres(_) => {
            if has("Connection refused")
                || has("could not translate host name")
                || has("No such file or directory")
            {
                return Some(format!(
                    "check that PostgreSQL runs there, and the host and port in {setting}"
                ));
            }
            if has("database \"") && has("does not exist") {
                let name = message
                    .split("database \"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or("NAME");
                return Some(format!(
                    "create it first, e.g. `createdb {name}` with the host, port and user of \
                     {setting}"
                ));
            }
            let credentials = has("password authentication failed")
                || has("role \"")
                || has("no password supplied")
                || has("no pg_hba.conf entry")
                || has("permission denied");
            credentials.then(|| format!("check the user and password in {setting}"))
        }
        // A file that cannot be opened or written is permanent; a lock held by another
        // process (`database is locked`, one migrating the same new file) passes.
        DatabaseUrl::Sqlite(_) => {
            let lower = message.to_ascii_lowercase();
            ["unable to open", "readonly database", "not a database"]
                .iter()
                .any(|text| lower.contains(text))
                .then(|| {
                    format!(
                        "check that the SQLite file can be opened and written, or point \
                         {setting} elsewhere"
                    )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_that_waiting_does_not_cure_end_a_command_at_once() {
        let pg = DatabaseUrl::parse("postgres://u@h/db").unwrap();
        let sqlite = DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap();
        let permanent = [
            (
                &pg,
                "connection to server at \"h\", port 5 failed: Connection refused",
            ),
            (&pg, "FATAL: database \"db\" does not exist"),
            (&pg, "FATAL: password authentication failed for user \"u\""),
            (&pg, "FATAL: role \"u\" does not exist"),
            (&sqlite, "Unable to open the database file"),
            (&sqlite, "attempt to write a readonly database"),
        ];
        for (url, message) in permanent {
            assert!(advice(url, message).is_some(), "{message}");
        }
        assert!(advice(&pg, "FATAL: database \"db\" does not exist")
            .is_some_and(|a| a.contains("createdb db")));
        let passing = [
            (&pg, "FATAL: the database system is starting up"),
            (&pg, "timeout expired"),
            (&sqlite, "database is locked"),
        ];
        for (url, message) in passing {
            assert_eq!(advice(url, message), None, "{message}");
        }
    }

    #[test]
    fn schemes_select_the_backend() {
        let cases = [
            ("postgres://u:p@h/db", Some(Backend::Postgres)),
            ("postgresql://h/db", Some(Backend::Postgres)),
            ("sqlite://data/csbs.db", Some(Backend::Sqlite)),
            ("sqlite:///tmp/x.db", Some(Backend::Sqlite)),
            ("sqlite://", None),
            ("sqlite://:memory:", None),
            ("data/csbs.db", None),
            ("mysql://h/db", None),
            ("", None),
        ];
        for (url, backend) in cases {
            assert_eq!(
                DatabaseUrl::parse(url).ok().map(|u| u.backend()),
                backend,
                "{url}"
            );
        }
    }

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/csbs",
                "postgres://app:***@db:5432/csbs",
            ),
            ("postgres://app@db/csbs", "postgres://app@db/csbs"),
            (
                "postgres://db/csbs?user=a&password=s3cret",
                "postgres://db/csbs?user=a&password=***",
            ),
            (
                "postgresql://app:p%40ss@db/csbs",
                "postgresql://app:***@db/csbs",
            ),
        ];
        for (url, redacted) in cases {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.redacted(), redacted);
            assert_eq!(format!("{parsed:?}"), redacted);
        }
        let secret = SecretString::from("postgres://app:s3cret@db/csbs".to_owned());
        assert_eq!(
            scrub("bad password s3cret for app", &secret),
            "bad password *** for app"
        );
    }

    #[test]
    fn libpq_defaults_do_not_override_the_url() {
        let settings = ConnectionSettings::default();
        let url = with_libpq_defaults("postgres://h/db?connect_timeout=9", &settings);
        assert!(url.contains("connect_timeout=9"));
        assert!(!url.contains("connect_timeout=2"));
        assert!(url.contains("&keepalives=1"));
        let url = with_libpq_defaults("postgres://h/db", &settings);
        assert!(url.starts_with("postgres://h/db?connect_timeout=2&"));
    }
}

/// Keeps writers of `backup_items` out for the rest of the transaction, in PostgreSQL's lock
/// `mode` (`SHARE`: writers wait, readers go on), with the statement timeout off: the work
/// that needs it reads every row. SQLite's write transaction already excludes writers.
pub(crate) fn hold_off_writers(conn: &mut DbConnection, mode: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        pg.batch_execute(&format!(
            "SET LOCAL statement_timeout = 0; LOCK TABLE backup_items IN {mode} MODE"
        ))?;
    }
    Ok(())
}

/// One setting's value, as `current_setting` gives it.
#[derive(QueryableByName)]
struct SettingRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// Runs `work` in this PostgreSQL session with the statement timeout off, then puts the
/// session's own timeout back, whatever `work` answered: for work that may take longer than
/// the timeout meant for the service's reads and cannot run inside a transaction (where
/// `SET LOCAL` would do), such as migrations under a session lock or `REINDEX CONCURRENTLY`.
pub(crate) fn without_statement_timeout<T>(
    pg: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let timeout: SettingRow =
        diesel::sql_query("SELECT current_setting('statement_timeout') AS value").get_result(pg)?;
    pg.batch_execute("SET statement_timeout = 0")?;
    let outcome = work(pg);
    let restored = diesel::sql_query("SELECT set_config('statement_timeout', $1, false)")
        .bind::<diesel::sql_types::Text, _>(&timeout.value)
        .execute(pg);
    let value = outcome?;
    restored?;
    Ok(value)
}
