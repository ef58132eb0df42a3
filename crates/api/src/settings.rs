//! Configuration: `config/default.toml`, then `config/<CSBS_ENV>.toml`, then environment
//! variables `CSBS__SECTION__KEY`, then `DATABASE_URL`. Later sources win.
//!
//! The defaults are also compiled into the binary, so it runs with no `config/` folder at
//! all. The folder is `CSBS_CONFIG_DIR` when set, else the first `config/` that holds a
//! `default.toml` beside the executable or in one of its parent folders (which finds the
//! repository's folder from `target/debug/` and `/app/config` in the container image).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use csbs_auth::AuthSettings;
use csbs_storage::{
    Backend, ConnectionSettings, DatabaseUrl, PoolMode, PoolSettings, ReplicaSettings, Repository,
    StorageError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults, identical to `config/default.toml`.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// Everything the service can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub import: ImportSettings,
    pub ingest: IngestSettings,
    /// Where the service keeps its own files (the generated signing secret). The default
    /// SQLite database is in `default_data_dir`, which this does not move.
    pub data_dir: PathBuf,
    /// The default `data_dir`, resolved as it is: the default database's folder even when
    /// `data_dir` is set elsewhere.
    #[serde(skip, default = "default_data_dir")]
    pub default_data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `HOST:PORT` to listen on; port 0 picks a free port.
    pub bind: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// How long requests in flight may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Base URL for `checkpoint_items_links` (e.g. `https://csbs.example.com`); empty means the
    /// scheme and host the request came in on.
    pub public_base_url: String,
    /// Addresses or networks (`10.0.0.0/8`) of the reverse proxies in front of the service:
    /// only their `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` headers are believed
    /// when links are made from the request (`public_base_url` empty).
    pub trusted_proxies: Vec<String>,
    /// How long a client may take to send a request's headers (from the connection's first
    /// byte, or the end of its previous request); then the connection is closed with 408.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's whole body; then 408.
    pub body_timeout_ms: u64,
}

/// The database and its connection pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://PATH`. A secret: it may hold a password.
    pub url: SecretString,
    pub max_connections: u32,
    pub min_idle_connections: u32,
    /// How long a request waits for a free connection before it is answered 503.
    pub pool_timeout_ms: u64,
    /// PostgreSQL cancels statements running longer than this; answered 503.
    pub statement_timeout_ms: u64,
    pub connect_timeout_seconds: u64,
    pub sqlite_busy_timeout_ms: u64,
    /// Connections are closed and replaced this long after they were opened.
    pub max_connection_lifetime_seconds: u64,
    /// The longest a request waits for the database, the wait for a connection included;
    /// then 503.
    pub request_timeout_ms: u64,
    /// `session` (PostgreSQL itself, or a pooler in session mode) or `transaction` (a pooler
    /// that lends server sessions per transaction, such as PgBouncer's transaction mode).
    pub pool_mode: PoolModeSetting,
    /// PostgreSQL standbys for the public reads (count, list's first pages, show); empty: all
    /// reads go to `url`. Secrets, like `url`.
    pub replica_urls: Vec<SecretString>,
    /// A replica further behind the primary than this is not read from.
    pub max_replica_lag_ms: u64,
    /// How often each replica's lag is measured.
    pub replica_check_interval_ms: u64,
}

/// `database.pool_mode`, read through `TryFrom<String>` to name the values allowed.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct PoolModeSetting(pub PoolMode);

impl TryFrom<String> for PoolModeSetting {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        PoolMode::parse(&value).map(Self).ok_or_else(|| {
            format!(
                "`{value}` is not a pool mode: use {}",
                PoolMode::NAMES.map(|name| format!("`{name}`")).join(" or ")
            )
        })
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `csbs_api=debug,info`; `RUST_LOG` overrides it.
    pub filter: String,
}

/// How log lines are written.
///
/// Read through `TryFrom<String>`: the `config` crate's own enum error names neither the
/// values allowed nor, always, the setting.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum LogFormat {
    Text,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "`{other}` is not a log format: use `text` or `json`"
            )),
        }
    }
}

/// The ingest API of backup engines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Items one bulk request may carry.
    pub max_bulk_items: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// The `import` command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    /// Items per transaction; unset: the backend's own default (see
    /// [`ImportSettings::batch_size_or`]).
    pub batch_size: Option<usize>,
    /// Connections writing at once (PostgreSQL; SQLite has one writer).
    pub writers: usize,
}

impl ImportSettings {
    /// Items per transaction: the command line's when given, else this setting, else the
    /// backend's default; at least 1.
    ///
    /// The defaults differ per backend: see [`Backend::default_import_batch`].
    pub fn batch_size_or(&self, given: Option<usize>, backend: Backend) -> usize {
        given
            .or(self.batch_size)
            .unwrap_or_else(|| backend.default_import_batch())
            .max(1)
    }

    /// Writer connections: the command line's when given, else this setting; at least 1.
    pub fn writers_or(&self, given: Option<u16>) -> usize {
        given.map_or(self.writers, usize::from).max(1)
    }
}

impl DatabaseSettings {
    /// The pool settings these describe.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_size: self.max_connections,
            min_idle: self.min_idle_connections,
            connection_timeout: Duration::from_millis(self.pool_timeout_ms),
            max_lifetime: Duration::from_secs(self.max_connection_lifetime_seconds.max(1)),
            connection: ConnectionSettings {
                statement_timeout: Duration::from_millis(self.statement_timeout_ms),
                connect_timeout: Duration::from_secs(self.connect_timeout_seconds),
                sqlite_busy_timeout: Duration::from_millis(self.sqlite_busy_timeout_ms),
                pool_mode: self.pool_mode.0,
            },
            ..PoolSettings::default()
        }
    }

    /// The replicas' URLs, parsed, and how they are chosen.
    pub fn replicas(&self) -> Result<(Vec<DatabaseUrl>, ReplicaSettings), StorageError> {
        let urls = self
            .replica_urls
            .iter()
            .map(|url| DatabaseUrl::parse(url.expose_secret()))
            .collect::<Result<_, _>>()?;
        let settings = ReplicaSettings {
            max_lag: Duration::from_millis(self.max_replica_lag_ms),
            check_interval: Duration::from_millis(self.replica_check_interval_ms.max(10)),
        };
        Ok((urls, settings))
    }

    /// The configured database URL, parsed (`redacted()` for messages).
    pub fn database_url(&self) -> Result<DatabaseUrl, StorageError> {
        DatabaseUrl::parse(self.url.expose_secret())
    }
}

/// Whether a repository must answer when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The service: it starts while the database is down, answers 503 and recovers when it
    /// comes back.
    Eventually,
    /// A one-shot command: a permanent failure (refused, no such database, bad credentials,
    /// an unopenable file) ends it at once with one line that says what to do.
    Now,
}

impl Settings {
    /// The one way from settings to a repository, for the service, every command and the
    /// benchmark: the URL parsed and a pool with these settings opened on it. Migrating is the
    /// caller's step (the service migrates in the background, the commands before they work).
    ///
    /// A SQLite file's folder is made when it is the data folder (the default database lives
    /// there); any other folder must exist, so that a mistyped path is an error rather than a
    /// folder made somewhere.
    pub fn open_repository(&self, reach: Reach) -> Result<Repository, StorageError> {
        let url = self.database.database_url()?;
        if let DatabaseUrl::Sqlite(path) = &url {
            let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(folder) =
                folder.filter(|f| *f == self.data_dir || *f == self.default_data_dir)
            {
                std::fs::create_dir_all(folder).map_err(|e| {
                    StorageError::Configuration(format!(
                        "cannot create the data folder {}: {e}",
                        folder.display()
                    ))
                })?;
            }
        }
        let pool = self.database.pool_settings();
        if reach == Reach::Now {
            csbs_storage::check_reachable(&url, &pool.connection)?;
        }
        Repository::open(&url, &pool)
    }
}

/// The environment variables of the list settings, comma-separated, and their keys.
const LIST_VARIABLES: [(&str, &str); 3] = [
    ("CSBS__AUTH__PUBLIC_KEY_FILES", "auth.public_key_files"),
    ("CSBS__DATABASE__REPLICA_URLS", "database.replica_urls"),
    ("CSBS__SERVER__TRUSTED_PROXIES", "server.trusted_proxies"),
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads the configuration from the documented sources.
    pub fn load() -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(config_dir().as_deref(), &env)
    }

    /// Loads the configuration with `config_dir` as the folder and `env` as the environment
    /// (tests pass their own).
    pub fn load_from(
        config_dir: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        use config::{Config, Environment, File, FileFormat};

        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(dir) = config_dir {
            builder = builder.add_source(File::from(dir.join("default.toml")).required(false));
            if let Some(environment) = env.get("CSBS_ENV").filter(|e| !e.is_empty()) {
                builder = builder
                    .add_source(File::from(dir.join(format!("{environment}.toml"))).required(true));
            }
        }
        // Values stay text (a numeric secret must not become a number); serde converts the
        // numeric settings. The lists are split here, as `config` splits lists only when it
        // also guesses every value's type.
        let variables: config::Map<String, String> = env
            .iter()
            .filter(|(name, _)| {
                name.starts_with("CSBS__") && !LIST_VARIABLES.iter().any(|(v, _)| v == name)
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("CSBS")
                .prefix_separator("__")
                .separator("__")
                .source(Some(variables)),
        );
        for (variable, key) in LIST_VARIABLES {
            if let Some(list) = env.get(variable) {
                let items: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect();
                builder = builder
                    .set_override(key, items)
                    .map_err(|e| SettingsError(e.to_string()))?;
            }
        }
        if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder
                .set_override("database.url", url.as_str())
                .map_err(|e| SettingsError(e.to_string()))?;
        }
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| SettingsError(e.to_string()))?;
        if let Some(base) = config_dir.and_then(Path::parent) {
            settings.resolve_relative_paths(base);
        }
        Ok(settings)
    }

    /// Makes the relative paths of the configuration (`data_dir`, a `sqlite://` path) relative
    /// to `base`, the folder that holds the configuration folder: every command then finds the
    /// same data folder, the same database and the same generated secret, from whatever
    /// folder it is run. (Without a configuration folder they stay relative to the current
    /// folder.)
    fn resolve_relative_paths(&mut self, base: &Path) {
        if self.data_dir.is_relative() {
            self.data_dir = base.join(&self.data_dir);
        }
        self.default_data_dir = base.join(&self.default_data_dir);
        let url = self.database.url.expose_secret();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if !path.is_empty() && Path::new(path).is_relative() {
                let resolved = format!("sqlite://{}", base.join(path).display());
                self.database.url = SecretString::from(resolved);
            }
        }
    }
}

/// The configuration folder: `CSBS_CONFIG_DIR`, else a `config/` beside the executable or
/// above it.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CSBS_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join("config"))
        .find(|dir| dir.join("default.toml").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_from(None, &env(vars))
    }

    #[test]
    fn relative_paths_are_relative_to_the_folder_of_the_configuration() {
        let root = std::env::temp_dir().join(format!("csbs-settings-{}", uuid::Uuid::new_v4()));
        let config = root.join("config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("default.toml"), "").unwrap();

        let settings = Settings::load_from(Some(&config), &env(&[])).unwrap();
        assert_eq!(settings.data_dir, root.join("data"));
        assert_eq!(
            settings.database.url.expose_secret(),
            format!("sqlite://{}", root.join("data/csbs.db").display())
        );

        let settings = Settings::load_from(
            Some(&config),
            &env(&[
                ("CSBS__DATA_DIR", "/var/lib/csbs"),
                ("DATABASE_URL", "sqlite://elsewhere/x.db"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/var/lib/csbs"));
        assert_eq!(
            settings.database.url.expose_secret(),
            format!("sqlite://{}", root.join("elsewhere/x.db").display())
        );

        for untouched in ["sqlite:///srv/csbs.db", "postgres://db/csbs"] {
            let settings =
                Settings::load_from(Some(&config), &env(&[("DATABASE_URL", untouched)])).unwrap();
            assert_eq!(settings.database.url.expose_secret(), untouched);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn defaults_are_complete() {
        let settings = load(&[]).unwrap();
        assert_eq!(settings.server.bind, "127.0.0.1:8080");
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite://data/csbs.db"
        );
        assert!(settings.auth.hmac_secret.is_none());
        assert_eq!(settings.log.format, LogFormat::Text);
    }

    #[test]
    fn the_import_batch_is_the_command_lines_then_the_settings_then_the_backends() {
        let unset = load(&[]).unwrap().import;
        assert_eq!(unset.batch_size, None);
        assert_eq!(unset.batch_size_or(None, Backend::Postgres), 2_000);
        assert_eq!(unset.batch_size_or(None, Backend::Sqlite), 20_000);
        assert_eq!(unset.batch_size_or(Some(7), Backend::Sqlite), 7);

        let set = load(&[("CSBS__IMPORT__BATCH_SIZE", "500")]).unwrap().import;
        assert_eq!(set.batch_size_or(None, Backend::Sqlite), 500);
        assert_eq!(set.batch_size_or(None, Backend::Postgres), 500);
        assert_eq!(set.batch_size_or(Some(9), Backend::Postgres), 9);
        assert_eq!(
            set.batch_size_or(Some(0), Backend::Postgres),
            1,
            "at least one"
        );
    }

    #[test]
    fn environment_variables_override_with_double_underscores() {
        let settings = load(&[
            ("CSBS__SERVER__BIND", "0.0.0.0:9000"),
            ("CSBS__DATABASE__MAX_CONNECTIONS", "16"),
            (
                "CSBS__AUTH__HMAC_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            ("CSBS__AUTH__PUBLIC_KEY_FILES", "/keys/a.pem,/keys/b.pem"),
            ("CSBS__LOG__FORMAT", "json"),
            ("CSBS__DATABASE__POOL_MODE", "transaction"),
            (
                "CSBS__DATABASE__REPLICA_URLS",
                "postgres://r1:5432/csbs,postgres://r2:5432/csbs",
            ),
            ("DATABASE_URL", "postgres://app:pw@db/csbs"),
            ("OTHER", "ignored"),
        ])
        .unwrap();
        assert_eq!(settings.server.bind, "0.0.0.0:9000");
        assert_eq!(
            settings.database.pool_settings().connection.pool_mode,
            PoolMode::Transaction
        );
        let (replicas, chosen) = settings.database.replicas().unwrap();
        assert_eq!(
            replicas
                .iter()
                .map(DatabaseUrl::redacted)
                .collect::<Vec<_>>(),
            ["postgres://r1:5432/csbs", "postgres://r2:5432/csbs"]
        );
        assert_eq!(chosen.max_lag, Duration::from_millis(1000));
        assert_eq!(settings.database.max_connections, 16);
        assert_eq!(
            settings
                .auth
                .hmac_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("0123456789abcdef0123456789abcdef".to_owned())
        );
        assert_eq!(settings.auth.public_key_files.len(), 2);
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://app:pw@db/csbs"
        );
    }

    #[test]
    fn keystone_settings_come_from_the_environment() {
        let settings = load(&[
            ("CSBS__AUTH__KEYSTONE__URL", "http://keystone:5000/v3"),
            ("CSBS__AUTH__KEYSTONE__PASSWORD", "12345"),
            ("CSBS__AUTH__KEYSTONE__CACHE_SECONDS", "30"),
            ("CSBS__AUTH__KEYSTONE__CA_FILE", "/etc/ssl/ks.pem"),
            ("CSBS__AUTH__ADMIN_ROLE", "admin,cloud_admin"),
        ])
        .unwrap();
        let keystone = &settings.auth.keystone;
        assert_eq!(
            settings.auth.keystone_url(),
            Some("http://keystone:5000/v3")
        );
        assert_eq!(
            keystone
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            Some("12345".to_owned())
        );
        assert_eq!(keystone.cache_seconds, 30);
        assert_eq!(keystone.timeout_ms, 3000);
        assert_eq!(keystone.username, "csbs");
        assert_eq!(keystone.ca_file, Some(PathBuf::from("/etc/ssl/ks.pem")));
        assert_eq!(
            settings.auth.admin_role,
            csbs_auth::RoleNames::new(["admin", "cloud_admin"])
        );
        let defaults = load(&[]).unwrap().auth;
        assert_eq!(defaults.keystone_url(), None);
        assert_eq!(defaults.keystone.cache_seconds, 300);
        assert!(load(&[("CSBS__AUTH__KEYSTONE__CACHE_SECONDZ", "1")]).is_err());
    }

    #[test]
    fn a_numeric_secret_stays_text() {
        let settings = load(&[(
            "CSBS__AUTH__HMAC_SECRET",
            "12345678901234567890123456789012",
        )])
        .unwrap();
        assert_eq!(
            settings
                .auth
                .hmac_secret
                .map(|s| s.expose_secret().to_owned())
                .as_deref(),
            Some("12345678901234567890123456789012")
        );
    }

    #[test]
    fn files_layer_in_order() {
        let dir = std::env::temp_dir().join(format!("csbs-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("default.toml"),
            "[server]\nbind = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("staging.toml"), "[server]\nworkers = 3\n").unwrap();
        let settings = Settings::load_from(Some(&dir), &env(&[("CSBS_ENV", "staging")])).unwrap();
        assert_eq!(settings.server.bind, "127.0.0.1:1");
        assert_eq!(settings.server.workers, 3);
        let missing = Settings::load_from(Some(&dir), &env(&[("CSBS_ENV", "prod")]));
        assert!(
            missing.is_err(),
            "a named environment without its file is an error"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn misspelt_settings_are_refused() {
        assert!(load(&[("CSBS__SERVER__BINDD", "x")]).is_err());
        assert!(load(&[("CSBS__LOG__FORMAT", "xml")]).is_err());
    }
}
