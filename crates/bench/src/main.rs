//! The service against hand-written SQL, shape by shape, on generated data:
//!
//! ```sh
//! cargo run --release -p csbs-bench -- --items 1000000
//! ```
//!
//! The benchmark makes a schema of its own on the PostgreSQL server (`--database-url`), fills
//! it, measures, prints the tables in Markdown, and drops the schema (unless `--keep`). With a
//! `sqlite://PATH` URL it works in that file instead: it fills it when the file does not exist
//! yet, measures what is in it otherwise, and leaves it in place. See `csbs_bench` for what is
//! measured.

use std::process::ExitCode;

use clap::Parser;
use csbs_api::settings::{LogFormat, LogSettings};
use csbs_api::telemetry;
use csbs_bench::{self as benchmark, BenchmarkOptions, SqlClient, DEFAULT_DATABASE_URL};
use csbs_test_support::PostgresSchema;

/// The service against hand-written SQL.
#[derive(Debug, Parser)]
struct Args {
    /// Items to generate.
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Tenants that share them.
    #[arg(long, default_value_t = 50)]
    projects: usize,
    /// The seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The PostgreSQL server (the benchmark works in a schema of its own there), or a SQLite
    /// file, `sqlite://PATH` (filled when it does not exist yet, measured as it is otherwise,
    /// and kept).
    #[arg(long, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Measured requests per shape, per side and per concurrency.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Seconds one side of a shape may take with one client: slower shapes get fewer
    /// requests (at least 20).
    #[arg(long, default_value_t = 20.0)]
    max_seconds: f64,
    /// Unmeasured requests before each measurement.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Concurrent clients, comma-separated (e.g. `1,2,8`).
    #[arg(long, value_delimiter = ',', default_value = "2,8")]
    concurrency: Vec<usize>,
    /// What runs the SQL side: `pgbench` (the default when it is installed) or `diesel`.
    #[arg(long, value_parser = ["pgbench", "diesel"])]
    sql_client: Option<String>,
    /// Items to import into a new SQLite database, for its import throughput (default: as
    /// many as `--items`, at most 1,000,000; 0 skips it).
    #[arg(long)]
    sqlite_items: Option<u64>,
    /// Items per import transaction (default: as `seed`, 2000 on PostgreSQL, 20000 on SQLite).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Connections writing the generated data into PostgreSQL at once.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// HTTP worker threads of the service.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Print `EXPLAIN (ANALYZE, BUFFERS)` of each shape's SQL.
    #[arg(long)]
    explain: bool,
    /// Keep the schema (and its data) at the end, and print its name.
    #[arg(long)]
    keep: bool,
    /// Measure the data of a schema kept by an earlier run (`--keep`) instead of generating
    /// new data; the schema is left in place.
    #[arg(long, conflicts_with = "keep")]
    schema: Option<String>,
    /// Measure only the shapes whose name contains one of these, comma-separated (e.g.
    /// `time range,resource_id`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seconds of steady two-client load per request of the service-CPU report (0 skips it).
    #[arg(long, default_value_t = 3.0)]
    cpu_seconds: f64,
    /// Measure the filter matrix too: every filter, every pair, and status + time range +
    /// one more, for the largest tenant, the median tenant and all tenants.
    #[arg(long)]
    matrix: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The service logs each request as in production; the lines are formatted and discarded.
    telemetry::init(
        &LogSettings {
            format: LogFormat::Text,
            filter: "info".into(),
        },
        std::io::sink,
    );
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    // Where the data lives: a schema of the PostgreSQL server, or the SQLite file itself.
    let (url, generate, schema) = match args.database_url.strip_prefix("sqlite://") {
        Some(path) => {
            if args.keep || args.schema.is_some() {
                anyhow::bail!("--keep and --schema are PostgreSQL's: a SQLite file is always kept");
            }
            let exists = std::path::Path::new(path).exists();
            eprintln!(
                "working in {path} ({})",
                if exists {
                    "measuring what it holds"
                } else {
                    "filling it"
                }
            );
            (args.database_url.clone(), !exists, None)
        }
        None => {
            let mut schema = match &args.schema {
                Some(name) => PostgresSchema::existing(&args.database_url, name),
                None => PostgresSchema::create(&args.database_url, "csbs_bench")
                    .map_err(anyhow::Error::msg)?,
            };
            if args.keep {
                schema.keep();
            }
            eprintln!("working in schema {}", schema.name());
            (schema.url().to_owned(), args.schema.is_none(), Some(schema))
        }
    };
    let options = BenchmarkOptions {
        generate,
        items: args.items,
        projects: args.projects,
        seed: args.seed,
        batch_size: args.batch_size,
        writers: args.writers.max(1),
        requests: args.requests,
        warmup: args.warmup,
        concurrency: args.concurrency.clone(),
        workers: args.workers,
        explain: args.explain,
        sql_client: match args.sql_client.as_deref() {
            Some("pgbench") => SqlClient::Pgbench,
            Some(_) => SqlClient::Diesel,
            None => SqlClient::best_available(),
        },
        // On SQLite the data itself is imported into SQLite.
        sqlite_items: args.sqlite_items.unwrap_or(if schema.is_some() {
            args.items.min(1_000_000)
        } else {
            0
        }),
        max_seconds: args.max_seconds,
        only: args.only.clone(),
        cpu_seconds: args.cpu_seconds,
        matrix: args.matrix,
    };
    let report = benchmark::run(&url, &options, &|message| eprintln!("{message}"))?;

    println!("{}", report.summary());
    println!("{}", report.table());
    if !report.cpu.is_empty() {
        println!(
            "{}\nThe service called the Keystone stand-in {} times (its login and one validation \
             when the cache works).\n",
            benchmark::cpu_table(&report.cpu, benchmark::CPU_CLIENTS),
            report.keystone_calls
        );
    }
    for plan in &report.plans {
        println!("### {}\n\nSQL:\n\n```\n{}\n```\n", plan.shape, plan.sql);
        if let Some(service) = &plan.service {
            println!("The service's statement:\n\n```\n{service}\n```\n");
        }
    }
    if let Some(schema) = schema
        .as_ref()
        .filter(|_| args.keep || args.schema.is_some())
    {
        eprintln!("the data stays in schema {}", schema.name());
    }
    if !report.disagreements.is_empty() {
        anyhow::bail!("the service and the SQL disagree on some shapes");
    }
    Ok(())
}
