//! Test support for the CSBS crates (a dev-dependency only): throwaway databases (a fresh
//! SQLite file, or a fresh PostgreSQL schema, per test, removed when the test ends), one test
//! per backend from one check (`backend_tests!`), item fixtures, and the reference meaning of a
//! list that the queries are tested against, and an identity provider stand-in
//! ([`identity_provider`]) for the tests of signing keys fetched from a URL.
//!
//! PostgreSQL is found at `CSBS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), and may be reached through a PgBouncer
//! ([`pgbouncer`]). Under CI (`CI` set) an unreachable
//! PostgreSQL fails the tests; elsewhere they run on SQLite alone and say so once per test
//! binary, on stderr past the harness's capture.

// Test support: a failure to set up a test database must stop the test loudly.
#![allow(clippy::expect_used, clippy::panic)]

pub mod identity_provider;

use std::path::PathBuf;
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use csbs_storage::{Backend, Checkout, DatabaseUrl, PoolMode, PoolSettings, Repository};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// One test's own database.
pub struct TestDatabase {
    url: String,
    backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    // Dropping these drops them on the server.
    Schema(#[allow(dead_code)] PostgresSchema),
    Database(#[allow(dead_code)] PostgresDatabase),
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} test database", self.backend)
    }
}

/// The PostgreSQL server the tests use, if there is one (see the module documentation).
///
/// # Panics
/// Under CI, when PostgreSQL cannot be reached: a CI run must never skip its PostgreSQL tests.
pub fn postgres_admin_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let url =
            std::env::var("CSBS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let reached = PgConnection::establish(&url)
            .map(|_| url)
            .map_err(|error| format!("PostgreSQL unreachable at CSBS_TEST_POSTGRES_URL ({error})"));
        required_under_ci(
            reached,
            "the `::postgres` tests of this binary pass without running",
        )
    })
    .clone()
}

/// A service some tests need: under CI its absence (`why`) fails them, since a CI run must
/// never skip them; elsewhere they pass without running, and a notice says so (`skipped`).
///
/// # Panics
/// Under CI (`CI` set), when `found` is an error.
pub fn required_under_ci<T>(found: Result<T, String>, skipped: &str) -> Option<T> {
    match found {
        Ok(found) => Some(found),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI needs this for the tests, but: {why}")
        }
        Err(why) => {
            // Written to the process's stderr itself, not through `eprintln!`, which the test
            // harness captures and shows only for failing tests: the notice must be seen when
            // everything passes.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "note: {why}; {skipped}");
            None
        }
    }
}

impl TestDatabase {
    /// A new SQLite file in a new temporary folder.
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("csbs-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary folder for the test database");
        Self {
            url: format!("sqlite://{}", dir.join("csbs.db").display()),
            backend: Backend::Sqlite,
            cleanup: Cleanup::Directory(dir),
        }
    }

    /// A new schema on the PostgreSQL server at `admin_url`, made the connection's
    /// `search_path` through the URL; or, when the tests go through PgBouncer
    /// ([`pgbouncer`]), a new database there, reached through PgBouncer (which passes no
    /// `search_path` on).
    pub fn postgres(admin_url: &str) -> Self {
        if let Some(pooler) = pgbouncer() {
            let database = PostgresDatabase::create(admin_url, &pooler.url)
                .unwrap_or_else(|error| panic!("a test database on the test PostgreSQL: {error}"));
            return Self {
                url: database.url.clone(),
                backend: Backend::Postgres,
                cleanup: Cleanup::Database(database),
            };
        }
        let schema = PostgresSchema::create(admin_url, "csbs_test")
            .unwrap_or_else(|error| panic!("a test schema on the test PostgreSQL: {error}"));
        Self {
            url: schema.url().to_owned(),
            backend: Backend::Postgres,
            cleanup: Cleanup::Schema(schema),
        }
    }

    /// The pool mode the service must be configured with for this database: see
    /// [`pool_mode_for`].
    pub fn pool_mode(&self) -> PoolMode {
        pool_mode_for(&self.url)
    }

    /// The database URL, as the service is configured with it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A repository on this database with every migration applied.
    pub fn repository(&self) -> Repository {
        let repository = self.open(&PoolSettings {
            min_idle: 0,
            ..PoolSettings::default()
        });
        repository
            .migrate()
            .expect("migrations apply to a fresh database");
        repository
    }

    /// A repository on this database, migrated through an ordinary pool first, whose own pool
    /// has `settings` (which may be too tight to migrate with: one connection, a statement
    /// timeout of a millisecond).
    pub fn repository_with(&self, settings: &PoolSettings) -> Repository {
        self.repository();
        self.open(settings)
    }

    fn open(&self, settings: &PoolSettings) -> Repository {
        let url = DatabaseUrl::parse(&self.url).expect("a valid test database URL");
        let mut settings = settings.clone();
        settings.connection.pool_mode = self.pool_mode();
        Repository::open(&url, &settings).expect("a pool on the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Directory(dir) = &self.cleanup {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The PgBouncer the PostgreSQL tests go through, when `CSBS_TEST_PGBOUNCER_URL` names one
/// (`postgres://USER@HOST:PORT`, with a `* = host=… port=…` fallback entry that reaches the
/// server of `CSBS_TEST_POSTGRES_URL`), in the mode `CSBS_TEST_PGBOUNCER_POOL_MODE` says it
/// runs (`session` or `transaction`, default `transaction`). Test databases are then made on
/// the server directly and used through PgBouncer.
#[derive(Debug, Clone)]
pub struct Pgbouncer {
    /// The URL without a database.
    pub url: String,
    /// The pool mode PgBouncer runs in.
    pub mode: PoolMode,
}

/// See [`Pgbouncer`].
///
/// # Panics
/// When `CSBS_TEST_PGBOUNCER_POOL_MODE` is neither `session` nor `transaction`.
pub fn pgbouncer() -> Option<Pgbouncer> {
    static POOLER: OnceLock<Option<Pgbouncer>> = OnceLock::new();
    POOLER
        .get_or_init(|| {
            let url = std::env::var("CSBS_TEST_PGBOUNCER_URL").ok()?;
            let mode = std::env::var("CSBS_TEST_PGBOUNCER_POOL_MODE")
                .unwrap_or_else(|_| "transaction".into());
            let mode = PoolMode::parse(&mode).unwrap_or_else(|| {
                panic!("CSBS_TEST_PGBOUNCER_POOL_MODE is `{mode}`, not session or transaction")
            });
            Some(Pgbouncer {
                url: url.trim_end_matches('/').to_owned(),
                mode,
            })
        })
        .clone()
}

/// The pool mode (`database.pool_mode`) for a service on the test database at `database_url`:
/// the PgBouncer's when the PostgreSQL tests go through one (every test database is then
/// reached through it), else `session`.
pub fn pool_mode_for(database_url: &str) -> PoolMode {
    match pgbouncer() {
        Some(pooler) if database_url.starts_with("postgres") => pooler.mode,
        _ => PoolMode::Session,
    }
}

/// A database of its own on a PostgreSQL server, used through another address (a pooler);
/// dropped, with the pooler's sessions on it, when this is dropped.
#[derive(Debug)]
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    fn create(admin_url: &str, pooler_url: &str) -> Result<Self, String> {
        let name = format!("csbs_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(admin_url)
            .map_err(|error| format!("cannot connect to PostgreSQL: {error}"))?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|error| format!("cannot create database {name}: {error}"))?;
        Ok(Self {
            url: format!("{pooler_url}/{name}"),
            admin_url: admin_url.to_owned(),
            name,
        })
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A schema of its own on a PostgreSQL server, with a URL whose connections work in it (its
/// `search_path`); dropped with everything in it when this is dropped, unless kept. A test
/// database is one; the benchmark works in one.
#[derive(Debug)]
pub struct PostgresSchema {
    admin_url: String,
    name: String,
    url: String,
    keep: bool,
}

impl PostgresSchema {
    /// Creates `<prefix>_<random>` on the server at `admin_url`. The error names neither the
    /// URL nor its password.
    pub fn create(admin_url: &str, prefix: &str) -> Result<Self, String> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(admin_url)
            .map_err(|error| format!("cannot connect to PostgreSQL: {error}"))?;
        conn.batch_execute(&format!("CREATE SCHEMA {name}"))
            .map_err(|error| format!("cannot create schema {name}: {error}"))?;
        let mut schema = Self::existing(admin_url, &name);
        schema.keep = false;
        Ok(schema)
    }

    /// The existing schema `name` on the server at `admin_url`, e.g. one kept by an earlier
    /// run. It is never dropped.
    pub fn existing(admin_url: &str, name: &str) -> Self {
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        Self {
            url: format!("{admin_url}{separator}options=-csearch_path%3D{name}"),
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            keep: true,
        }
    }

    /// A database URL whose connections work in this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the schema in place when this is dropped (to look at the data afterwards).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// Checks out every connection of `repository`'s pool and keeps them until the returned
/// guard is dropped: the next request must then wait for the pool timeout.
pub fn exhaust_pool(repository: &Repository) -> Vec<Checkout> {
    let size = repository.pool_state().max;
    (0..size)
        .map(|_| repository.connection().expect("a free connection"))
        .collect()
}

/// How many prepared statements the connection `repository` hands out next has cached (with a
/// pool of one connection: that connection's).
pub fn cached_statements(repository: &Repository) -> usize {
    repository
        .connection()
        .expect("a free connection")
        .cached_statements()
}

/// A complete item document (spec §2) for `project_id`, with `overrides` merged over the top
/// level and, for the keys `backup_data` and `extend_info`, over their members.
pub fn item_json(project_id: &str, overrides: serde_json::Value) -> serde_json::Value {
    let mut item = serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": "backup-web",
        "description": "nightly",
        "status": "available",
        "checkpoint_id": uuid::Uuid::new_v4().to_string(),
        "resource_id": "f8ddc472-cf00-4384-851e-5f2a68c33762",
        "resource_type": "OS::Nova::Server",
        "created_at": "2018-08-14T07:53:15.663766",
        "updated_at": "2018-08-17T04:33:58.025327",
        "protected_at": null,
        "tags": [],
        "backup_data": {"eip": "80.158.17.102", "private_ip": "192.168.0.209", "ram": 8192,
            "vcpus": 4, "disk": 0, "imagetype": "gold", "cloudservicetype": "QEMU",
            "__openstack_region_name": ""},
        "extend_info": {"auto_trigger": false, "incremental": false, "progress": 100,
            "size": 146184, "average_speed": 25.2, "space_saving_ratio": 6.5,
            "copy_status": "na", "copy_from": null, "fail_code": {}, "fail_op": "",
            "fail_reason": "", "image_type": "backup", "resource_az": "eu-de-02",
            "resource_name": "ecs-web-01", "resource_type": "OS::Nova::Server",
            "finished_at": "2018-08-14T08:31:08.720800", "supported_restore_mode": "backup",
            "support_lld": true, "hypervisor_type": "QEMU", "os_images_data": [],
            "volume_backups": []},
        "project_id": project_id,
        "policy_id": null
    });
    if let (Some(target), serde_json::Value::Object(overrides)) = (item.as_object_mut(), overrides)
    {
        for (key, value) in overrides {
            match (key.as_str(), target.get_mut(&key), value) {
                (
                    "backup_data" | "extend_info",
                    Some(serde_json::Value::Object(inner)),
                    serde_json::Value::Object(members),
                ) => {
                    inner.extend(members);
                }
                (_, _, value) => {
                    target.insert(key, value);
                }
            }
        }
    }
    item
}

/// [`item_json`] validated into a record.
///
/// # Panics
/// When the overrides make the item invalid.
pub fn item_record(project_id: &str, overrides: serde_json::Value) -> csbs_domain::BackupRecord {
    csbs_domain::BackupRecord::from_json(item_json(project_id, overrides))
        .expect("a valid test item")
}

/// The ids of the `records` that `filter` selects, in `sort` order, computed without a
/// database: the meaning of count and list that the queries are tested against.
pub fn reference_list(
    records: &[csbs_domain::BackupRecord],
    filter: &csbs_domain::BackupFilter,
    sort: &csbs_domain::SortSpec,
) -> Vec<String> {
    use csbs_domain::{SortDirection, SortKey};
    let mut selected: Vec<&csbs_domain::BackupRecord> =
        records.iter().filter(|r| filter.matches(r)).collect();
    let last_direction = sort.keys().last().map_or(SortDirection::Desc, |&(_, d)| d);
    selected.sort_by(|a, b| {
        let keys = sort.keys().iter().map(|&(key, direction)| {
            let ordering = match key {
                SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
                SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
                SortKey::Name => a.name.cmp(&b.name),
                SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
                SortKey::ProtectedAt => a
                    .protected_at
                    .unwrap_or(i64::MIN)
                    .cmp(&b.protected_at.unwrap_or(i64::MIN)),
                SortKey::Id => a.id.cmp(&b.id),
            };
            (ordering, direction)
        });
        // Across tenants an id may repeat, so the tenant breaks the last tie.
        let tenant = (a.project_id.cmp(&b.project_id), last_direction);
        keys.chain(std::iter::once(tenant))
            .map(|(ordering, direction)| match direction {
                SortDirection::Asc => ordering,
                SortDirection::Desc => ordering.reverse(),
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    selected
        .into_iter()
        .map(|r| r.id.as_str().to_owned())
        .collect()
}

/// Every id `filter` lists in `sort` order, paging through with `limit` and the marker.
///
/// # Panics
/// When a page fails, or when paging does not end within one page per row and one more.
pub fn list_all_ids(
    repository: &Repository,
    filter: &csbs_domain::BackupFilter,
    sort: &csbs_domain::SortSpec,
    limit: u32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut marker = None;
    for _ in 0..100_000 {
        let page = repository
            .list(
                filter,
                sort,
                &csbs_domain::PageRequest {
                    limit,
                    marker: marker.clone(),
                    offset: 0,
                },
            )
            .expect("a page");
        for document in &page.documents {
            let value: serde_json::Value = serde_json::from_str(document).expect("stored JSON");
            ids.push(value["id"].as_str().expect("an id").to_owned());
        }
        if !page.has_more {
            return ids;
        }
        let last = page.last_id.expect("a full page has a last id");
        marker = Some(csbs_domain::ItemId::parse("marker", &last).expect("a stored id"));
    }
    panic!("paging did not end");
}

/// Runs raw SQL on `repository`'s database, for tests that must reach past the repository
/// (e.g. to damage the counters on purpose).
pub fn execute_sql(repository: &Repository, sql: &str) {
    try_execute_sql(repository, sql).expect("the SQL runs");
}

/// The 64-bit integers of the column `value` of a query, for tests that read what the
/// repository does not answer (e.g. when an idempotency record was written).
pub fn query_i64(repository: &Repository, sql: &str) -> Vec<i64> {
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let mut connection = repository.connection().expect("a connection");
    diesel::sql_query(sql)
        .load::<Row>(&mut *connection)
        .expect("the query runs")
        .into_iter()
        .map(|row| row.value)
        .collect()
}

/// [`execute_sql`], answering the database's error instead of panicking on it.
pub fn try_execute_sql(repository: &Repository, sql: &str) -> Result<(), String> {
    use diesel::connection::SimpleConnection;
    repository
        .connection()
        .expect("a connection")
        .batch_execute(sql)
        .map_err(|e| e.to_string())
}

/// A fresh PostgreSQL test database, or `None` when there is no reachable server outside CI
/// (see [`postgres_admin_url`]).
pub fn postgres_database() -> Option<TestDatabase> {
    postgres_admin_url().map(|url| TestDatabase::postgres(&url))
}

/// Turns `check(db: TestDatabase)` functions into one test per backend, `<name>::sqlite` and
/// `<name>::postgres`, so that each backend's result is reported on its own and can be run by
/// name. (The PostgreSQL test returns at once where [`postgres_database`] finds no server.)
///
/// `backend_tests!(async: name, …)` does the same for `async fn name(db: TestDatabase)`, run on
/// actix's test runtime (the calling crate depends on `actix-web`).
#[macro_export]
macro_rules! backend_tests {
    (async: $($check:ident),+ $(,)?) => {
        $(
            mod $check {
                #[actix_web::test]
                async fn sqlite() {
                    super::$check($crate::TestDatabase::sqlite()).await;
                }

                #[actix_web::test]
                async fn postgres() {
                    if let Some(db) = $crate::postgres_database() {
                        super::$check(db).await;
                    }
                }
            }
        )+
    };
    ($($check:ident),+ $(,)?) => {
        $(
            mod $check {
                #[test]
                fn sqlite() {
                    super::$check($crate::TestDatabase::sqlite());
                }

                #[test]
                fn postgres() {
                    if let Some(db) = $crate::postgres_database() {
                        super::$check(db);
                    }
                }
            }
        )+
    };
}
