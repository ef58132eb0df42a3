//! The service-versus-SQL benchmark: how much the HTTP service adds to the database's own time
//! for each common query shape.
//!
//! [`run`] fills an empty PostgreSQL database (or schema), or a new SQLite file, with
//! [`csbs_sample_data`] through its seed pipeline, vacuums and analyzes it, starts the real
//! service in-process, and then measures each query shape twice: through the service over
//! HTTP, and as the equivalent hand-written SQL sent straight to the database (the same
//! filters, order and LIMIT as the repository's queries, see `csbs-storage`'s
//! `sql/filters.rs` and `sql/ordering.rs`). Before measuring a shape it checks that both
//! answer the same, so that the comparison is between equivalent work. The SQL is written
//! once for both databases.
//!
//! On PostgreSQL the SQL side is run by `pgbench` when it is installed (see [`pgbench`]),
//! else by a diesel client in this process; on SQLite by diesel connections set up as the
//! service's are. The report also gives import throughput (PostgreSQL, SQLite, and
//! a server-side `INSERT … SELECT` of the same rows for reference) and the process's peak
//! resident memory while the service was under load.
//!
//! The `csbs-bench` binary runs this at full size; a test runs it small.

mod cpu;
mod matrix;
mod pgbench;

pub use cpu::{table as cpu_table, CpuCost};

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use csbs_auth::{mint_hs256, Claims};
use csbs_domain::FromQueryPairs;
use csbs_domain::{format_timestamp, BackupFilter, CountQuery, ProjectId, TenantScope};
use csbs_storage::{
    establish, Backend, ConnectionSettings, DatabaseUrl, DbConnection, MultiBackend, PoolSettings,
    Repository, ITEM_COLUMNS,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Nullable, Text};
use secrecy::SecretString;

use csbs_api::settings::Settings;
use csbs_api::startup::Application;
use csbs_sample_data::{seed, SeedOptions};

/// The PostgreSQL server the benchmark uses unless told otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The HMAC secret of the benchmark's service (it signs the benchmark's own tokens only).
const SECRET: &str = "csbs-benchmark-secret-0123456789abcdef";
/// Items per list page, as a console asks for them.
const PAGE_LIMIT: u64 = 100;
/// How deep the deep pages are: the item before page 51 at 100 a page.
const DEEP_POSITION: u64 = 5000;

/// What to measure, and how much.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkOptions {
    /// Whether to generate the data; when not, the database holds it already (from an earlier
    /// run) and is measured as it is.
    pub generate: bool,
    /// Items to generate.
    pub items: u64,
    /// Tenants that share them.
    pub projects: usize,
    /// The seed of the generated data.
    pub seed: u64,
    /// Items per import transaction (`None`: the backend's default, as `seed` and `import`
    /// take it).
    pub batch_size: Option<usize>,
    /// Connections writing the import at once (PostgreSQL).
    pub writers: usize,
    /// Measured requests per shape, per side and per concurrency.
    pub requests: usize,
    /// Unmeasured requests before each measurement.
    pub warmup: usize,
    /// Concurrent clients; every shape is measured at each.
    pub concurrency: Vec<usize>,
    /// HTTP worker threads of the service.
    pub workers: usize,
    /// Whether to record `EXPLAIN (ANALYZE, BUFFERS)` of each shape's SQL.
    pub explain: bool,
    /// What runs the SQL side.
    pub sql_client: SqlClient,
    /// Items to import into a new SQLite database for its import throughput (0: none).
    pub sqlite_items: u64,
    /// Seconds one side of a shape may take with one client; slow shapes get fewer requests.
    pub max_seconds: f64,
    /// Measure only the shapes whose name contains one of these (all when empty).
    pub only: Vec<String>,
    /// Seconds of steady load per request of the CPU report (0: no report).
    pub cpu_seconds: f64,
    /// Whether to measure the filter matrix (`matrix.rs`) beside the named shapes.
    pub matrix: bool,
}

/// What runs the SQL side of each shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlClient {
    /// PostgreSQL's `pgbench`, in its own process.
    Pgbench,
    /// A diesel connection per client, in this process.
    Diesel,
}

impl SqlClient {
    /// `pgbench` when it is installed, else diesel.
    pub fn best_available() -> Self {
        if pgbench::available() {
            Self::Pgbench
        } else {
            Self::Diesel
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Pgbench => "pgbench (-M prepared)",
            Self::Diesel => "diesel (one connection per client)",
        }
    }
}

impl Default for BenchmarkOptions {
    fn default() -> Self {
        Self {
            generate: true,
            items: 100_000,
            projects: 50,
            seed: 42,
            batch_size: None,
            writers: 2,
            requests: 200,
            warmup: 20,
            concurrency: vec![2, 8],
            workers: 2,
            explain: false,
            sql_client: SqlClient::Diesel,
            sqlite_items: 0,
            matrix: false,
            max_seconds: 20.0,
            only: Vec::new(),
            cpu_seconds: 3.0,
        }
    }
}

/// Latencies of one side of one shape at one concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Requests answered successfully (and measured).
    pub requests: usize,
    /// Requests that failed (not in the percentiles).
    pub errors: usize,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Requests completed per second of wall-clock time, all clients together.
    pub throughput: f64,
}

/// One row of the result table.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeResult {
    /// What was asked, e.g. `largest: count status=available`.
    pub shape: String,
    /// The request path and query sent to the service.
    pub request: String,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Through the service, over HTTP.
    pub service: Latency,
    /// The equivalent SQL, straight to PostgreSQL.
    pub sql: Latency,
}

impl ShapeResult {
    /// Service p50 over SQL p50: how many times the database's own time a request takes.
    pub fn ratio_p50(&self) -> f64 {
        self.service.p50.as_secs_f64() / self.sql.p50.as_secs_f64().max(1e-9)
    }

    /// Service throughput over SQL throughput at the same number of clients.
    pub fn ratio_throughput(&self) -> f64 {
        self.service.throughput / self.sql.throughput.max(1e-9)
    }
}

/// How the data went in.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportStats {
    /// Items generated and stored.
    pub items: u64,
    /// Seconds to generate and store them (through `Repository::upsert`) and to finish the
    /// load (`Repository::finish_bulk_load`: after an initial load, its indexes and counters):
    /// until the data is ready to serve.
    pub seconds: f64,
    /// Of which finishing the load.
    pub finish_seconds: f64,
    /// Connections that wrote them at once.
    pub writers: usize,
    /// Items per transaction (`None`: one statement for all of them).
    pub batch_size: Option<usize>,
}

impl ImportStats {
    /// Items stored per second.
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

/// `, batches of N` for an import that was cut into transactions, else nothing.
fn batches(stats: &ImportStats) -> String {
    stats
        .batch_size
        .map_or_else(String::new, |size| format!(", batches of {size}"))
}

/// A tenant the shapes are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPick {
    /// `largest` or `median`.
    pub label: String,
    /// Its project id.
    pub project_id: String,
    /// Its items, every status.
    pub items: u64,
    /// Its items that are not `deleted` (what count and list see by default).
    pub visible: u64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkReport {
    /// The import; `None` when the data was there already.
    pub import: Option<ImportStats>,
    /// A tenth more items imported into the full table (when the data was generated).
    pub incremental_import: Option<ImportStats>,
    /// The same rows copied by one server-side `INSERT … SELECT` into an empty twin of the
    /// table (same indexes, no counter triggers): the database's own bulk-insert speed.
    pub import_reference: Option<ImportStats>,
    /// The import into a new SQLite database, when asked for.
    pub sqlite_import: Option<ImportStats>,
    /// The same SQLite rows copied by one `INSERT … SELECT` into a new database with the same
    /// schema but no counter triggers: SQLite's own bulk-insert speed for this schema.
    pub sqlite_import_reference: Option<ImportStats>,
    /// What ran the SQL side.
    pub sql_client: SqlClient,
    /// The largest resident memory of this process (service, HTTP clients) seen while the
    /// service was being measured.
    pub peak_rss_bytes: u64,
    /// Items in the database, every status.
    pub items: u64,
    /// Seconds of `VACUUM (ANALYZE)` before measuring.
    pub vacuum_seconds: f64,
    /// Size of the items table with its indexes, in bytes.
    pub table_bytes: i64,
    /// The tenants measured.
    pub tenants: Vec<TenantPick>,
    /// One row per shape and concurrency.
    pub results: Vec<ShapeResult>,
    /// Shapes where the service and the SQL answered differently (should be none).
    pub disagreements: Vec<String>,
    /// Shapes the service answered 503, not measured: a filter whose scan outlasts the
    /// statement timeout.
    pub unavailable: Vec<String>,
    /// The plans of each shape, when asked for.
    pub plans: Vec<ShapePlan>,
    /// The service's CPU per request, `/healthz` first (empty when not asked for).
    pub cpu: Vec<CpuCost>,
    /// Calls the service made to the Keystone stand-in over the whole CPU report: its login
    /// and one validation, when the cache works.
    pub keystone_calls: usize,
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of one shape, on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapePlan {
    pub shape: String,
    /// The plan of the shape's hand-written SQL.
    pub sql: String,
    /// The plan of the statement the service runs for it, or the error that prevented one
    /// (counts only: a list page runs the SQL's own query).
    pub service: Option<String>,
}

impl BenchmarkReport {
    /// The result table, in Markdown.
    pub fn table(&self) -> String {
        let mut table = String::from(
            "| shape | clients | service p50 | service p99 | service req/s | SQL p50 | SQL p99 | SQL req/s | req/s ratio | p50 ratio |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for row in &self.results {
            let errors = match (row.service.errors, row.sql.errors) {
                (0, 0) => String::new(),
                (service, sql) => format!(" ({service} service / {sql} SQL errors)"),
            };
            table.push_str(&format!(
                "| {}{errors} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} |\n",
                row.shape,
                row.concurrency,
                millis(row.service.p50),
                millis(row.service.p99),
                row.service.throughput,
                millis(row.sql.p50),
                millis(row.sql.p99),
                row.sql.throughput,
                ratio(row.ratio_throughput()),
                ratio(row.ratio_p50()),
            ));
        }
        table
    }

    /// The import, the tenants and the requests behind each shape, in Markdown.
    pub fn summary(&self) -> String {
        let import = self.import.as_ref().map_or_else(
            || "already stored".to_owned(),
            |import| {
                format!(
                    "imported in {:.1} s ({:.0} items/s, {} writers{})",
                    import.seconds,
                    import.items_per_second(),
                    import.writers,
                    batches(import),
                )
            },
        );
        let rate = |stats: &Option<ImportStats>| {
            stats.as_ref().map_or_else(
                || "not measured".to_owned(),
                |s| {
                    format!(
                        "{} items in {:.1} s ({:.0} items/s, {} writer{}{})",
                        s.items,
                        s.seconds,
                        s.items_per_second(),
                        s.writers,
                        if s.writers == 1 { "" } else { "s" },
                        batches(s),
                    )
                },
            )
        };
        let mut text = format!(
            "Data: {} items, {import}; VACUUM (ANALYZE) {:.1} s; backup_items with indexes \
             {:.0} MiB.\n\n\
             - import into PostgreSQL, until ready to serve: {}\n\
             - a tenth more into the full table: {}\n\
             - the same rows by one server-side INSERT … SELECT (same indexes, no counters): {}\n\
             - import into SQLite: {}\n\
             - the same rows by one INSERT … SELECT into a new SQLite database (same indexes, \
             no counters): {}\n\
             - SQL side run by: {}\n\
             - peak resident memory of the service process under load: {:.1} MiB\n\n",
            self.items,
            self.vacuum_seconds,
            self.table_bytes as f64 / (1024.0 * 1024.0),
            rate(&self.import),
            rate(&self.incremental_import),
            rate(&self.import_reference),
            rate(&self.sqlite_import),
            rate(&self.sqlite_import_reference),
            self.sql_client.label(),
            self.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        );
        for tenant in &self.tenants {
            text.push_str(&format!(
                "- {} tenant `{}`: {} items ({} not deleted)\n",
                tenant.label, tenant.project_id, tenant.items, tenant.visible
            ));
        }
        text.push('\n');
        let mut seen = std::collections::HashSet::new();
        for row in &self.results {
            if seen.insert(&row.shape) {
                text.push_str(&format!("- {}: `GET {}`\n", row.shape, row.request));
            }
        }
        for shape in &self.unavailable {
            text.push_str(&format!(
                "- not measured: {shape} answered 503 (the statement timeout)\n"
            ));
        }
        for disagreement in &self.disagreements {
            text.push_str(&format!("- DISAGREEMENT: {disagreement}\n"));
        }
        text
    }
}

/// A ratio with two significant digits at most, so that 0.02× does not print as 0.0×.
fn ratio(value: f64) -> String {
    if value < 1.0 {
        format!("{value:.2}×")
    } else {
        format!("{value:.1}×")
    }
}

/// Milliseconds, with the digits that matter.
fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Runs the whole benchmark on the empty PostgreSQL database or SQLite file at
/// `database_url` (or, with `options.generate` off, on the data already there); `progress`
/// hears what is going on.
pub fn run(
    database_url: &str,
    options: &BenchmarkOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<BenchmarkReport> {
    let url = DatabaseUrl::parse(database_url)?;
    let backend = url.backend();
    // Before anything is imported: the answer does not depend on the data.
    if options.explain && backend == Backend::Sqlite {
        bail!("--explain shows PostgreSQL's plans; SQLite's are not recorded");
    }
    let repository = Repository::open(
        &url,
        &PoolSettings {
            min_idle: 0,
            ..PoolSettings::default()
        },
    )?;
    repository
        .migrate()
        .context("cannot migrate the benchmark database")?;

    let import = if options.generate {
        progress(&format!("generating {} items", options.items));
        let stats = seed_timed(&repository, options, options.items, options.seed)?;
        progress(&format!(
            "stored {} items in {:.1} s, ready to serve ({:.0} items/s; finishing took {:.1} s)",
            stats.items,
            stats.seconds,
            stats.items_per_second(),
            stats.finish_seconds,
        ));
        Some(stats)
    } else {
        None
    };
    // A tenth more items into the table that now holds the rest (other tenants: another
    // seed), as an import into a database in service writes them: indexes and counters kept
    // up to date as the rows come.
    let incremental_import = if options.generate && options.items >= 10 {
        let more = options.items / 10;
        progress(&format!("adding {more} items to the full table"));
        let stats = seed_timed(&repository, options, more, options.seed + 1)?;
        progress(&format!(
            "stored {} more items in {:.1} s ({:.0} items/s)",
            stats.items,
            stats.seconds,
            stats.items_per_second()
        ));
        Some(stats)
    } else {
        None
    };
    drop(repository);

    let mut conn = sql_connection(&url)?;
    let vacuum_started = Instant::now();
    vacuum_analyze(&mut conn, backend)?;
    let vacuum_seconds = vacuum_started.elapsed().as_secs_f64();
    let table_bytes = diesel::sql_query(match backend {
        Backend::Postgres => "SELECT pg_total_relation_size('backup_items'::regclass) AS n",
        // The whole file: SQLite keeps the table and its indexes in it.
        Backend::Sqlite => {
            "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()"
        }
    })
    .get_result::<CountRow>(&mut conn)?
    .n;
    progress(&format!("VACUUM (ANALYZE) took {vacuum_seconds:.1} s"));

    let items = diesel::sql_query("SELECT count(*) AS n FROM backup_items")
        .get_result::<CountRow>(&mut conn)?
        .n;
    let import_reference = match backend {
        Backend::Postgres => Some(import_reference(&mut conn, REFERENCE_ROWS)?),
        // The SQLite reference is measured with the SQLite import (`sqlite_items`).
        Backend::Sqlite => None,
    };
    let sql_client = match backend {
        Backend::Postgres => options.sql_client,
        Backend::Sqlite => SqlClient::Diesel,
    };
    let tenants = pick_tenants(&mut conn)?;
    let largest = tenants
        .iter()
        .find(|tenant| tenant.label == "largest")
        .context("no largest tenant")?
        .project_id
        .clone();
    let keystone = cpu::KeystoneStandIn::start(&largest);
    let service =
        RunningService::start(database_url, options.workers, &keystone.service_settings())?;
    progress(&format!("service listening on port {}", service.port));
    let mut shapes = shapes(&mut conn, &tenants)?;
    if options.matrix {
        shapes.extend(matrix::shapes(&mut conn, &tenants, |conn, project| {
            quarter_of_span(conn, project)?.context("no items to take a time range of")
        })?);
    }
    if !options.only.is_empty() {
        shapes.retain(|shape| options.only.iter().any(|part| shape.name.contains(part)));
    }
    let work_dir = tempfile::tempdir()?;

    let memory = RssSampler::start();
    let mut results = Vec::new();
    let mut disagreements = Vec::new();
    let mut unavailable = Vec::new();
    for shape in &shapes {
        let through_service = match service.answer(shape) {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                // The service declined (e.g. its statement timeout cut a scan of millions of
                // rows short), as documented: reported, and the shape is not measured.
                unavailable.push(format!("{}: `GET {}`", shape.name, shape.path));
                continue;
            }
            Err(error) => {
                disagreements.push(format!("{}: {error:#}", shape.name));
                continue;
            }
        };
        let probe = Instant::now();
        let straight = sql_answer(&mut conn, shape)?;
        let (requests, warmup) = budget(options, probe.elapsed());
        if through_service != straight {
            disagreements.push(format!(
                "{}: service {through_service:?}, SQL {straight:?}",
                shape.name
            ));
        }
        for &clients in &options.concurrency {
            let clients = clients.max(1);
            progress(&format!(
                "measuring {} with {clients} client(s)",
                shape.name
            ));
            let service_workers = (0..clients)
                .map(|_| service.worker(shape))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let service_latency = measure(service_workers, requests, warmup);
            let sql_latency = match sql_client {
                SqlClient::Pgbench => pgbench::measure(
                    database_url,
                    &pgbench::inline_binds(&shape.sql, &shape.binds),
                    clients,
                    requests,
                    warmup,
                    work_dir.path(),
                )?,
                SqlClient::Diesel => {
                    let sql_workers = (0..clients)
                        .map(|_| sql_worker(&url, shape))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    measure(sql_workers, requests, warmup)
                }
            };
            results.push(ShapeResult {
                shape: shape.name.clone(),
                request: shape.path.clone(),
                concurrency: clients,
                service: service_latency,
                sql: sql_latency,
            });
        }
    }
    let peak_rss_bytes = memory.stop();
    let cpu = if options.cpu_seconds > 0.0 {
        progress("measuring the service's CPU per request");
        let probes = cpu_probes(&service, &largest, &keystone.caller_token)?;
        cpu::measure_all(&service, &probes, CPU_CLIENTS, options.cpu_seconds)?
    } else {
        Vec::new()
    };
    let keystone_calls = keystone.calls();
    drop(service);

    let mut plans = Vec::new();
    if options.explain {
        // The service's own statements, through the repository it uses (one connection).
        let repository = Repository::open(
            &url,
            &PoolSettings {
                max_size: 1,
                min_idle: 0,
                ..PoolSettings::default()
            },
        )?;
        for shape in &shapes {
            plans.push(ShapePlan {
                shape: shape.name.clone(),
                sql: explain(&mut conn, shape)?,
                service: service_plan(&repository, shape),
            });
        }
    }
    // Last, so that its memory is not counted as the service's.
    let (sqlite_import, sqlite_import_reference) = if options.sqlite_items > 0 {
        progress(&format!(
            "importing {} items into SQLite",
            options.sqlite_items
        ));
        let (import, reference) = sqlite_import(options)?;
        (Some(import), Some(reference))
    } else {
        (None, None)
    };
    Ok(BenchmarkReport {
        import,
        import_reference,
        incremental_import,
        sqlite_import,
        sqlite_import_reference,
        sql_client,
        peak_rss_bytes,
        items: u64::try_from(items)?,
        vacuum_seconds,
        table_bytes,
        tenants,
        results,
        disagreements,
        unavailable,
        plans,
        cpu,
        keystone_calls,
    })
}

/// Connections of the CPU report: the steady two-client load its figures are quoted for.
pub const CPU_CLIENTS: usize = 2;

/// The requests of the CPU report, for the tenant `project`: a count the counters answer (with
/// a JWT, and with a cached Keystone token), a show, and list pages of 10 and 100 items.
fn cpu_probes(
    service: &RunningService,
    project: &str,
    keystone_token: &str,
) -> anyhow::Result<Vec<cpu::CpuProbe>> {
    let jwt = token(project, &[])?;
    let base = format!("/v1/{project}/checkpoint_items");
    let (status, body) =
        HttpConnection::connect(service.address())?.get(&format!("{base}?limit=1"), &jwt)?;
    let page: serde_json::Value = serde_json::from_slice(&body)?;
    let id = page["checkpoint_items"][0]["id"]
        .as_str()
        .with_context(|| format!("no item to show ({status})"))?
        .to_owned();
    let probe = |name: &str, target: String, token: &str| cpu::CpuProbe {
        name: name.to_owned(),
        target,
        token: token.to_owned(),
    };
    let count = format!("{base}/count?status=available");
    Ok(vec![
        probe("count from the counters, JWT", count.clone(), &jwt),
        probe(
            "count from the counters, Keystone token (cached)",
            count,
            keystone_token,
        ),
        probe("show", format!("{base}/{id}"), &jwt),
        probe("list page of 10", format!("{base}?limit=10"), &jwt),
        probe("list page of 100", format!("{base}?limit=100"), &jwt),
    ])
}

/// Requests and warm-up requests for a shape whose SQL took `once` when run alone: as many as
/// asked for, unless that would keep one side busy for more than `options.max_seconds` with
/// one client (then fewer, but at least 20, and a warm-up of two).
fn budget(options: &BenchmarkOptions, once: Duration) -> (usize, usize) {
    let affordable = (options.max_seconds / once.as_secs_f64().max(1e-6)) as usize;
    if affordable >= options.requests {
        (options.requests, options.warmup)
    } else {
        (affordable.max(20), options.warmup.min(2))
    }
}

/// Rows copied by the import reference.
const REFERENCE_ROWS: i64 = 200_000;

/// Copies up to `rows` rows with one server-side `INSERT … SELECT` into an empty twin of
/// `backup_items` (`LIKE … INCLUDING ALL`: the same indexes, trigram ones included, but not
/// the counter triggers, which would count the copies), then drops the twin.
fn import_reference(conn: &mut DbConnection, rows: i64) -> anyhow::Result<ImportStats> {
    conn.batch_execute(
        "DROP TABLE IF EXISTS import_reference; \
         CREATE TABLE import_reference (LIKE backup_items INCLUDING ALL); \
         CREATE TEMPORARY TABLE import_reference_source AS \
             SELECT * FROM backup_items ORDER BY project_id, id LIMIT 0",
    )?;
    diesel::sql_query(
        "INSERT INTO import_reference_source SELECT * FROM backup_items ORDER BY project_id, id LIMIT $1",
    )
    .bind::<BigInt, _>(rows)
    .execute(conn)?;
    let started = Instant::now();
    let copied = diesel::sql_query(
        "INSERT INTO import_reference SELECT * FROM import_reference_source ORDER BY project_id, id",
    )
    .execute(conn)?;
    let seconds = started.elapsed().as_secs_f64();
    conn.batch_execute("DROP TABLE import_reference; DROP TABLE import_reference_source")?;
    Ok(ImportStats {
        items: copied as u64,
        seconds,
        finish_seconds: 0.0,
        writers: 1,
        batch_size: None,
    })
}

/// Imports `options.sqlite_items` generated items into a new SQLite database in a temporary
/// directory, as `seed` does, and times it; then times SQLite's own copy of the same rows
/// into a second new database (the reference).
fn sqlite_import(options: &BenchmarkOptions) -> anyhow::Result<(ImportStats, ImportStats)> {
    let dir = tempfile::tempdir()?;
    let imported = dir.path().join("import.db");
    let reference = dir.path().join("reference.db");
    let sqlite_url =
        |path: &std::path::Path| DatabaseUrl::parse(&format!("sqlite://{}", path.display()));
    let repository = Repository::open(&sqlite_url(&imported)?, &PoolSettings::default())?;
    repository.migrate()?;
    let import = seed_timed(&repository, options, options.sqlite_items, options.seed)?;
    drop(repository);

    Repository::open(&sqlite_url(&reference)?, &PoolSettings::default())?.migrate()?;
    let reference_stats = sqlite_import_reference(&reference, &imported)?;
    Ok((import, reference_stats))
}

/// Copies every row of `source`'s `backup_items` with one `INSERT … SELECT` into `target`, a
/// migrated, empty database whose counter triggers are dropped first (as the PostgreSQL
/// reference has none): the same indexes, the same connection settings and page cache as an
/// import's connection, one transaction.
fn sqlite_import_reference(
    target: &std::path::Path,
    source: &std::path::Path,
) -> anyhow::Result<ImportStats> {
    let mut conn = diesel::SqliteConnection::establish(&target.display().to_string())?;
    #[derive(QueryableByName)]
    struct Trigger {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let triggers: Vec<Trigger> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'backup_items'",
    )
    .load(&mut conn)?;
    for trigger in &triggers {
        conn.batch_execute(&format!("DROP TRIGGER \"{}\"", trigger.name))?;
    }
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -262144; PRAGMA wal_autocheckpoint = 50000; \
         ATTACH DATABASE '{}' AS source",
        source.display().to_string().replace('\'', "''")
    ))?;
    let started = Instant::now();
    let columns = ITEM_COLUMNS.join(", ");
    let copied = conn.transaction(|conn| {
        diesel::sql_query(format!(
            "INSERT INTO main.backup_items ({columns}) SELECT {columns} FROM source.backup_items \
             ORDER BY project_id, id"
        ))
        .execute(conn)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(ImportStats {
        items: copied as u64,
        seconds,
        finish_seconds: 0.0,
        writers: 1,
        batch_size: None,
    })
}

/// Generates and stores `items` items with the options' tenants, seed and batch size.
fn seed_timed(
    repository: &Repository,
    options: &BenchmarkOptions,
    items: u64,
    seed_value: u64,
) -> anyhow::Result<ImportStats> {
    let batch_size = options
        .batch_size
        .unwrap_or_else(|| repository.backend().default_import_batch());
    let bar = csbs_api::commands::progress::items(items);
    let seeded = {
        let bar = bar.clone();
        seed(
            repository,
            &SeedOptions {
                items,
                projects: options.projects,
                seed: seed_value,
                batch_size,
                writers: options.writers,
            },
            move |stored| bar.inc(stored),
        )?
    };
    bar.finish_and_clear();
    // What `seed` and `import` do after their last batch (after an initial load its indexes
    // and counters; statistics, compact counter indexes), so that the data is measured as
    // those commands leave it.
    let finishing = Instant::now();
    repository.finish_bulk_load()?;
    let finish_seconds = finishing.elapsed().as_secs_f64();
    Ok(ImportStats {
        items: seeded.items,
        seconds: seeded.seconds + finish_seconds,
        finish_seconds,
        writers: match repository.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => options.writers,
        },
        batch_size: Some(batch_size),
    })
}

/// Samples this process's resident memory every 50 ms on a thread of its own and keeps the
/// largest value, until stopped.
struct RssSampler {
    done: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(resident_bytes()));
        let thread = {
            let (done, peak) = (done.clone(), peak.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Self {
            done,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the largest resident size seen, in bytes.
    fn stop(mut self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// This process's resident memory now (`VmRSS` of `/proc/self/status`); 0 where there is
/// no such file.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")
                    .and_then(|rest| rest.trim().strip_suffix("kB"))
                    .and_then(|kib| kib.trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib * 1024)
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    #[allow(dead_code)] // read from the database, as the service reads it, but not compared
    document: String,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct TenantRow {
    #[diesel(sql_type = Text)]
    project_id: String,
    #[diesel(sql_type = BigInt)]
    items: i64,
    #[diesel(sql_type = BigInt)]
    visible: i64,
}

#[derive(QueryableByName)]
struct SpanRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
}

#[derive(QueryableByName)]
struct MarkerRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    created_at_us: i64,
}

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// A connection of the SQL side, set up as the service's are (on SQLite: case-sensitive
/// `LIKE`, as the service's substring filters are), without a statement timeout: the SQL side
/// of a shape the service refuses to scan for is still measured.
fn sql_connection(url: &DatabaseUrl) -> anyhow::Result<DbConnection> {
    let settings = ConnectionSettings {
        statement_timeout: Duration::ZERO,
        ..ConnectionSettings::default()
    };
    establish(url, &settings).context("cannot connect for SQL")
}

/// `VACUUM (ANALYZE)` of every table of the schema, so that the planner has statistics and
/// index-only scans find the visibility map set, as on a long-running database; on SQLite,
/// `ANALYZE`, for the same statistics.
fn vacuum_analyze(conn: &mut DbConnection, backend: Backend) -> anyhow::Result<()> {
    if backend == Backend::Sqlite {
        conn.batch_execute("ANALYZE")?;
        return Ok(());
    }
    let tables: Vec<NameRow> = diesel::sql_query(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()",
    )
    .load(conn)?;
    for table in tables {
        conn.batch_execute(&format!("VACUUM (ANALYZE) \"{}\"", table.name))?;
    }
    Ok(())
}

/// The largest tenant and the median one.
fn pick_tenants(conn: &mut DbConnection) -> anyhow::Result<Vec<TenantPick>> {
    let tenants: Vec<TenantRow> = diesel::sql_query(
        "SELECT project_id, count(*) AS items, count(*) FILTER (WHERE status <> 'deleted') AS visible \
         FROM backup_items GROUP BY project_id ORDER BY items DESC, project_id",
    )
    .load(conn)?;
    let pick = |label: &str, row: &TenantRow| TenantPick {
        label: label.to_owned(),
        project_id: row.project_id.clone(),
        items: u64::try_from(row.items).unwrap_or(0),
        visible: u64::try_from(row.visible).unwrap_or(0),
    };
    let Some(largest) = tenants.first() else {
        bail!("the benchmark database holds no items");
    };
    let mut picks = vec![pick("largest", largest)];
    if tenants.len() > 2 {
        picks.push(pick("median", &tenants[tenants.len() / 2]));
    }
    Ok(picks)
}

/// A bind value of a shape's SQL.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    BigInt(i64),
}

/// What a shape answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Count,
    Page,
}

/// One query shape: the request to the service and the SQL that does the same.
#[derive(Debug, Clone)]
struct Shape {
    name: String,
    /// Path and query of the request.
    path: String,
    token: String,
    kind: Kind,
    sql: String,
    binds: Vec<Bind>,
}

/// An answer, reduced to what both sides must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Count(u64),
    Page { ids: Vec<String>, more: bool },
}

/// A token for `project` with `roles`, valid for a day.
fn token(project: &str, roles: &[&str]) -> anyhow::Result<String> {
    let project = ProjectId::parse("project_id", project)?;
    let claims = Claims::new(
        "csbs-benchmark",
        &project,
        roles.iter().map(|r| (*r).to_owned()).collect(),
        Duration::from_secs(24 * 3600),
    );
    Ok(mint_hs256(&SecretString::from(SECRET), &claims)?)
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    query.finish()
}

/// The default list order and the visible items of one tenant, as the repository asks for
/// them: no status filter means every status but `deleted`.
const TENANT_VISIBLE: &str = "FROM backup_items WHERE project_id = $1 AND status <> 'deleted'";
const LIST_ORDER: &str = "ORDER BY created_at_us DESC, id DESC";

/// The time `minutes` after midnight (UTC) of the day of `micros`, plus 123.456 ms.
fn at_time_of_day(micros: i64, minutes: i64) -> i64 {
    const DAY: i64 = 86_400_000_000;
    micros - micros.rem_euclid(DAY) + minutes * 60_000_000 + 123_456
}

/// A quarter of the span of the tenant's items (all items' for `None`), from three eighths in,
/// from 09:30 on its first day to 17:45 on its last: times of day as a user types them, so
/// both ends cut a day (and an hour) in two, and most of either end day is inside the range.
pub(crate) fn quarter_of_span(
    conn: &mut DbConnection,
    project: Option<&str>,
) -> anyhow::Result<Option<(i64, i64)>> {
    let span: SpanRow = match project {
        Some(project) => diesel::sql_query(
            "SELECT min(created_at_us) AS first, max(created_at_us) AS last \
             FROM backup_items WHERE project_id = $1",
        )
        .bind::<Text, _>(project)
        .get_result(conn)?,
        None => diesel::sql_query(
            "SELECT min(created_at_us) AS first, max(created_at_us) AS last FROM backup_items",
        )
        .get_result(conn)?,
    };
    Ok(match (span.first, span.last) {
        (Some(first), Some(last)) => {
            let start = at_time_of_day(first + (last - first) / 8 * 3, 9 * 60 + 30);
            Some((
                start,
                at_time_of_day(start + (last - first) / 4, 17 * 60 + 45),
            ))
        }
        _ => None,
    })
}

/// Every shape, for each picked tenant and across tenants.
fn shapes(conn: &mut DbConnection, tenants: &[TenantPick]) -> anyhow::Result<Vec<Shape>> {
    let mut shapes = Vec::new();
    // One row more than the page, as the service reads it to know whether a next page exists.
    let fetch = PAGE_LIMIT + 1;
    for tenant in tenants {
        let project = tenant.project_id.as_str();
        let label = tenant.label.as_str();
        let tenant_token = token(project, &[])?;
        let base = format!("/v1/{project}/checkpoint_items");
        let shape = |name: &str, path: String, kind: Kind, sql: String, binds: Vec<Bind>| Shape {
            name: format!("{label}: {name}"),
            path,
            token: tenant_token.clone(),
            kind,
            sql,
            binds,
        };
        let tenant_bind = || Bind::Text(project.to_owned());

        shapes.push(shape(
            "count",
            format!("{base}/count"),
            Kind::Count,
            format!("SELECT count(*) AS n {TENANT_VISIBLE}"),
            vec![tenant_bind()],
        ));
        shapes.push(shape(
            "count status=available",
            format!("{base}/count?status=available"),
            Kind::Count,
            "SELECT count(*) AS n FROM backup_items WHERE project_id = $1 AND status = $2".into(),
            vec![tenant_bind(), Bind::Text("available".into())],
        ));
        shapes.push(shape(
            "count status=available,error",
            format!("{base}/count?status=available&status=error"),
            Kind::Count,
            "SELECT count(*) AS n FROM backup_items WHERE project_id = $1 AND status IN ($2, $3)"
                .into(),
            vec![
                tenant_bind(),
                Bind::Text("available".into()),
                Bind::Text("error".into()),
            ],
        ));
        // A search box's substring: the manual backups of one server before an upgrade
        // (`before-upgrade-<server name>`, a few per server).
        let searched: Option<NameRow> = diesel::sql_query(
            "SELECT name FROM backup_items WHERE project_id = $1 \
             AND name LIKE 'before-upgrade-%' ORDER BY id LIMIT 1",
        )
        .bind::<Text, _>(project)
        .get_result(conn)
        .optional()?;
        if let Some(searched) = searched {
            shapes.push(shape(
                "count name=<one server's upgrade backups>",
                format!("{base}/count?{}", query_string(&[("name", &searched.name)])),
                Kind::Count,
                format!("SELECT count(*) AS n {TENANT_VISIBLE} AND name LIKE $2"),
                vec![tenant_bind(), Bind::Text(format!("%{}%", searched.name))],
            ));
        }

        if let Some((start, end)) = quarter_of_span(conn, Some(project))? {
            let (start_text, end_text) = (format_timestamp(start), format_timestamp(end));
            shapes.push(shape(
                "count time range (¼ of the span)",
                format!(
                    "{base}/count?{}",
                    query_string(&[("start_time", &start_text), ("end_time", &end_text)])
                ),
                Kind::Count,
                format!(
                    "SELECT count(*) AS n {TENANT_VISIBLE} AND created_at_us >= $2 AND created_at_us <= $3"
                ),
                vec![tenant_bind(), Bind::BigInt(start), Bind::BigInt(end)],
            ));
            // A dimension with status and time: from the dimension counters.
            shapes.push(shape(
                "count status + resource_type + time range",
                format!(
                    "{base}/count?{}",
                    query_string(&[
                        ("status", "available"),
                        ("resource_type", "OS::Nova::Server"),
                        ("start_time", &start_text),
                        ("end_time", &end_text),
                    ])
                ),
                Kind::Count,
                "SELECT count(*) AS n FROM backup_items WHERE project_id = $1 AND status = $2 \
                 AND resource_type = $3 AND created_at_us >= $4 AND created_at_us <= $5"
                    .into(),
                vec![
                    tenant_bind(),
                    Bind::Text("available".into()),
                    Bind::Text("OS::Nova::Server".into()),
                    Bind::BigInt(start),
                    Bind::BigInt(end),
                ],
            ));
        }

        // The resource with the most backups.
        let resource: Option<NameRow> = diesel::sql_query(
            "SELECT resource_id AS name FROM backup_items WHERE project_id = $1 \
             GROUP BY resource_id ORDER BY count(*) DESC, resource_id LIMIT 1",
        )
        .bind::<Text, _>(project)
        .get_result(conn)
        .optional()?;
        if let Some(resource) = resource {
            shapes.push(shape(
                "count resource_id",
                format!(
                    "{base}/count?{}",
                    query_string(&[("resource_id", &resource.name)])
                ),
                Kind::Count,
                format!("SELECT count(*) AS n {TENANT_VISIBLE} AND resource_id = $2"),
                vec![tenant_bind(), Bind::Text(resource.name)],
            ));
        }

        shapes.push(shape(
            "list first page",
            format!("{base}?limit={PAGE_LIMIT}"),
            Kind::Page,
            format!("SELECT id, document {TENANT_VISIBLE} {LIST_ORDER} LIMIT {fetch}"),
            vec![tenant_bind()],
        ));

        // Page 51 (or, for a small tenant, the middle page): after the marker of the page
        // before it, or by offset.
        let position = DEEP_POSITION.min(tenant.visible / 2 / PAGE_LIMIT * PAGE_LIMIT);
        if position >= PAGE_LIMIT {
            let page = position / PAGE_LIMIT + 1;
            let marker: MarkerRow = diesel::sql_query(format!(
                "SELECT id, created_at_us {TENANT_VISIBLE} {LIST_ORDER} LIMIT 1 OFFSET $2"
            ))
            .bind::<Text, _>(project)
            .bind::<BigInt, _>(i64::try_from(position - 1)?)
            .get_result(conn)?;
            shapes.push(shape(
                &format!("list page {page} by marker"),
                format!("{base}?limit={PAGE_LIMIT}&marker={}", marker.id),
                Kind::Page,
                format!(
                    "SELECT id, document {TENANT_VISIBLE} AND (created_at_us, id) < ($2, $3) \
                     {LIST_ORDER} LIMIT {fetch}"
                ),
                vec![
                    tenant_bind(),
                    Bind::BigInt(marker.created_at_us),
                    Bind::Text(marker.id),
                ],
            ));
            shapes.push(shape(
                &format!("list page {page} by offset {position}"),
                format!("{base}?limit={PAGE_LIMIT}&offset={position}"),
                Kind::Page,
                format!(
                    "SELECT id, document {TENANT_VISIBLE} {LIST_ORDER} LIMIT {fetch} OFFSET {position}"
                ),
                vec![tenant_bind()],
            ));
        }
    }

    shapes.push(Shape {
        name: "all tenants: count (admin)".into(),
        path: "/v1/ops/checkpoint_items/count?all_tenants=true".into(),
        token: token("ops", &["admin"])?,
        kind: Kind::Count,
        sql: "SELECT count(*) AS n FROM backup_items WHERE status <> 'deleted'".into(),
        binds: vec![],
    });
    shapes.push(Shape {
        name: "all tenants: count status=available (admin)".into(),
        path: "/v1/ops/checkpoint_items/count?all_tenants=true&status=available".into(),
        token: token("ops", &["admin"])?,
        kind: Kind::Count,
        sql: "SELECT count(*) AS n FROM backup_items WHERE status = $1".into(),
        binds: vec![Bind::Text("available".into())],
    });
    Ok(shapes)
}

/// The shape's SQL with its binds, ready to run.
fn bound(sql: String, binds: &[Bind]) -> BoxedSqlQuery<'static, MultiBackend, SqlQuery> {
    binds.iter().fold(
        diesel::sql_query(sql).into_boxed::<MultiBackend>(),
        |query, bind| match bind {
            Bind::Text(value) => query.bind::<Text, _>(value.clone()),
            Bind::BigInt(value) => query.bind::<BigInt, _>(*value),
        },
    )
}

/// Runs the shape's SQL once and reduces its answer.
fn sql_answer(conn: &mut DbConnection, shape: &Shape) -> anyhow::Result<Answer> {
    let query = bound(shape.sql.clone(), &shape.binds);
    Ok(match shape.kind {
        Kind::Count => Answer::Count(u64::try_from(query.get_result::<CountRow>(conn)?.n)?),
        Kind::Page => {
            let rows: Vec<PageRow> = query.load(conn)?;
            let more = rows.len() as u64 > PAGE_LIMIT;
            let ids = rows
                .into_iter()
                .take(PAGE_LIMIT as usize)
                .map(|row| row.id)
                .collect();
            Answer::Page { ids, more }
        }
    })
}

/// A client of the shape's SQL on a connection of its own.
fn sql_worker(
    url: &DatabaseUrl,
    shape: &Shape,
) -> anyhow::Result<impl FnMut() -> anyhow::Result<()> + Send> {
    let mut conn = sql_connection(url)?;
    let shape = shape.clone();
    Ok(move || {
        sql_answer(&mut conn, &shape)?;
        Ok(())
    })
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the statement the service runs for a count shape: from the
/// counters where they apply, which the hand-written SQL does not show.
fn service_plan(repository: &Repository, shape: &Shape) -> Option<String> {
    if !matches!(shape.kind, Kind::Count) {
        return None;
    }
    let (path, query) = shape.path.split_once('?').unwrap_or((&shape.path, ""));
    let project = path.split('/').nth(2)?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let plan = (|| -> anyhow::Result<Vec<String>> {
        let count = CountQuery::from_pairs(&pairs)?;
        let filter = BackupFilter {
            scope: if count.all_tenants {
                TenantScope::AllTenants
            } else {
                TenantScope::Project(ProjectId::parse("project_id", project)?)
            },
            criteria: count.criteria,
        };
        Ok(repository.explain_analyze_count(&filter)?)
    })();
    Some(match plan {
        Ok(lines) => lines.join("\n"),
        Err(error) => format!("(no plan: {error:#})"),
    })
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the shape's SQL, one line per plan line.
fn explain(conn: &mut DbConnection, shape: &Shape) -> anyhow::Result<String> {
    let rows: Vec<PlanRow> = bound(
        format!("EXPLAIN (ANALYZE, BUFFERS) {}", shape.sql),
        &shape.binds,
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| row.line)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Runs every worker on its own thread: `warmup` unmeasured calls each, then, all starting
/// together, `requests` measured calls shared among them.
fn measure<W>(workers: Vec<W>, requests: usize, warmup: usize) -> Latency
where
    W: FnMut() -> anyhow::Result<()> + Send,
{
    let clients = workers.len().max(1);
    let barrier = Barrier::new(clients);
    let runs: Vec<(Vec<Duration>, usize, Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(i, mut worker)| {
                let barrier = &barrier;
                // The first `requests % clients` workers take one more.
                let share = requests / clients + usize::from(i < requests % clients);
                let warmup = warmup.div_ceil(clients).max(1);
                scope.spawn(move || {
                    for _ in 0..warmup {
                        let _ = worker();
                    }
                    barrier.wait();
                    let started = Instant::now();
                    let mut latencies = Vec::with_capacity(share);
                    let mut errors = 0;
                    for _ in 0..share {
                        let sent = Instant::now();
                        match worker() {
                            Ok(()) => latencies.push(sent.elapsed()),
                            Err(_) => errors += 1,
                        }
                    }
                    (latencies, errors, started, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect()
    });

    let mut latencies: Vec<Duration> = runs.iter().flat_map(|r| r.0.iter().copied()).collect();
    latencies.sort_unstable();
    let errors = runs.iter().map(|r| r.1).sum();
    let wall = match (
        runs.iter().map(|r| r.2).min(),
        runs.iter().map(|r| r.3).max(),
    ) {
        (Some(start), Some(end)) => end.duration_since(start),
        _ => Duration::ZERO,
    };
    Latency {
        requests: latencies.len(),
        errors,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        throughput: latencies.len() as f64 / wall.as_secs_f64().max(1e-9),
    }
}

/// The nearest-rank percentile `q` (0–1) of sorted `values`; zero when there are none.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The real service on its own thread and actix system, stopped when this is dropped.
struct RunningService {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    data_dir: PathBuf,
}

impl RunningService {
    /// Builds the service as production does, on `database_url`, listening on a free port,
    /// with the `extra` settings (`CSBS__…` names).
    fn start(
        database_url: &str,
        workers: usize,
        extra: &[(&'static str, String)],
    ) -> anyhow::Result<Self> {
        let data_dir =
            std::env::temp_dir().join(format!("csbs-bench-{}", uuid::Uuid::new_v4().simple()));
        let env: HashMap<String, String> = [
            ("CSBS__SERVER__BIND", "127.0.0.1:0".to_owned()),
            ("CSBS__SERVER__WORKERS", workers.max(1).to_string()),
            ("CSBS__SERVER__SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
            ("CSBS__AUTH__HMAC_SECRET", SECRET.to_owned()),
            ("CSBS__DATA_DIR", data_dir.display().to_string()),
            ("DATABASE_URL", database_url.to_owned()),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let settings = Settings::load_from(None, &env)?;

        let (ready, started) = mpsc::channel::<anyhow::Result<u16>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let application = match Application::build(settings) {
                    Ok(application) => application,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(application.port()));
                // Dropping the server future stops its acceptor and workers.
                tokio::select! {
                    _ = application.run_until_stopped() => {}
                    _ = stopped => {}
                }
            });
        });
        let mut service = Self {
            port: 0,
            stop: Some(stop),
            thread: Some(thread),
            data_dir,
        };
        service.port = started
            .recv()
            .context("the service thread ended before it listened")??;
        service.wait_until_ready()?;
        Ok(service)
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits for `/readyz` (migrations applied) for up to thirty seconds.
    fn wait_until_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut connection = HttpConnection::connect(self.address())?;
        loop {
            if connection.get("/readyz", "")?.0 == 200 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the service did not become ready");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks the shape once and reduces the answer; `None` when the service declined with 503.
    fn answer(&self, shape: &Shape) -> anyhow::Result<Option<Answer>> {
        let mut connection = HttpConnection::connect(self.address())?;
        let (status, body) = connection.get(&shape.path, &shape.token)?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("{}: the answer is not JSON", shape.name))?;
        if status == 503 {
            return Ok(None);
        }
        if status != 200 {
            bail!(
                "{}: GET {} answered {status}: {body}",
                shape.name,
                shape.path
            );
        }
        Ok(Some(match shape.kind {
            Kind::Count => Answer::Count(body["count"].as_u64().context("no count")?),
            Kind::Page => Answer::Page {
                ids: body["checkpoint_items"]
                    .as_array()
                    .context("no checkpoint_items")?
                    .iter()
                    .map(|item| item["id"].as_str().unwrap_or_default().to_owned())
                    .collect(),
                more: body.get("checkpoint_items_links").is_some(),
            },
        }))
    }

    /// A client of the shape on a keep-alive connection of its own. It reads the whole answer
    /// but does not parse it: the measured time is the service's.
    fn worker(&self, shape: &Shape) -> anyhow::Result<impl FnMut() -> anyhow::Result<()> + Send> {
        let mut connection = HttpConnection::connect(self.address())?;
        let (path, token) = (shape.path.clone(), shape.token.clone());
        Ok(move || {
            let (status, body) = connection.get(&path, &token)?;
            if status != 200 {
                bail!(
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            Ok(())
        })
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A keep-alive HTTP/1.1 connection. Deliberately small: a blocking `reqwest` call hops
/// through a runtime thread, which would add its own latency to every measurement.
struct HttpConnection {
    address: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl HttpConnection {
    fn connect(address: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Self {
            address,
            stream: BufReader::with_capacity(1 << 16, stream),
        })
    }

    /// `GET target` (with the token, when not empty): the status and the body. A connection
    /// the server closed meanwhile (keep-alive timeout) is opened again, once.
    fn get(&mut self, target: &str, token: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        match self.exchange(target, token) {
            Ok(answer) => Ok(answer),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                *self = Self::connect(self.address)?;
                Ok(self.exchange(target, token)?)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn exchange(&mut self, target: &str, token: &str) -> io::Result<(u16, Vec<u8>)> {
        let auth = if token.is_empty() {
            String::new()
        } else {
            format!("X-Auth-Token: {token}\r\n")
        };
        let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n");
        self.stream.get_mut().write_all(request.as_bytes())?;

        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| invalid(format!("not an HTTP status line: {line:?}")))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => {
                        length = Some(value.parse::<usize>().map_err(|e| invalid(e.to_string()))?)
                    }
                    "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                    "connection" => close = value.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            self.read_chunks(&mut body)?;
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.stream.read_exact(&mut body)?;
        } else {
            self.stream.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            *self = Self::connect(self.address)?;
        }
        Ok((status, body))
    }

    fn read_chunks(&mut self, body: &mut Vec<u8>) -> io::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            let size_text = line.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16).map_err(|e| invalid(e.to_string()))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    line.clear();
                    if self.stream.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        return Ok(());
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.stream.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            self.stream.read_exact(&mut crlf)?;
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn measure_shares_the_requests_among_the_clients() {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                || {
                    std::thread::sleep(Duration::from_millis(1));
                    Ok(())
                }
            })
            .collect();
        let latency = measure(workers, 10, 3);
        assert_eq!(latency.requests, 10);
        assert_eq!(latency.errors, 0);
        assert!(latency.p50 >= Duration::from_millis(1) && latency.p50 <= latency.p99);
        assert!(latency.throughput > 0.0);
    }
}
