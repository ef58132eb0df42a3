//! The command line: `serve` (the default), `migrate`, `token`, `import`, `seed`, `counters`,
//! `healthcheck`. Every command's `--help` ends with how the configuration is found.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// How the configuration is found, at the end of every command's `--help`.
pub const CONFIGURATION_HELP: &str = "\
Configuration (later sources win):
  config/default.toml     in CSBS_CONFIG_DIR, else in a config/ folder beside the
                          executable or above it (the repository's, /app/config in the image)
  config/$CSBS_ENV.toml   when CSBS_ENV is set
  CSBS__SECTION__KEY      environment variables, e.g. CSBS__SERVER__BIND=0.0.0.0:8080,
                          CSBS__DATA_DIR=/var/lib/csbs, CSBS__AUTH__HMAC_SECRET=...
  DATABASE_URL            the database: sqlite://PATH (default sqlite://data/csbs.db) or
                          postgres://USER:PASSWORD@HOST:PORT/DATABASE
Relative paths are taken from the folder that holds config/. README.md lists every setting.";

/// The CSBS backup query service: the HTTP API of backups (count, list, show, delete, ingest)
/// over PostgreSQL or SQLite, and the tools to prepare and load its database.
#[derive(Debug, Parser)]
#[command(name = "csbs-api", version, after_help = CONFIGURATION_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (applies migrations first, and retries while the database is away).
    #[command(after_help = CONFIGURATION_HELP)]
    Serve,
    /// Apply database migrations and exit.
    #[command(after_help = CONFIGURATION_HELP)]
    Migrate,
    /// Print a token signed with the configured HMAC secret, or with the one `serve` generated
    /// in the data folder (for development and tests).
    #[command(after_help = CONFIGURATION_HELP)]
    Token(TokenArgs),
    /// Load backup items from JSON Lines (one item object per line; `-` reads standard input).
    #[command(after_help = CONFIGURATION_HELP)]
    Import(ImportArgs),
    /// Generate realistic, deterministic backups: the same arguments always give the same data.
    #[command(after_help = CONFIGURATION_HELP)]
    Seed(SeedArgs),
    /// Check the trigger-kept counters against the rows, or rebuild them from the rows.
    #[command(after_help = CONFIGURATION_HELP)]
    Counters {
        #[command(subcommand)]
        action: CountersAction,
    },
    /// Exit 0 if the local service answers `GET /readyz` with 200, else 1 (for container
    /// health checks, where no curl is at hand).
    #[command(after_help = CONFIGURATION_HELP)]
    Healthcheck,
}

/// What to do with the counters.
#[derive(Debug, Subcommand)]
pub enum CountersAction {
    /// Report every counter that disagrees with the rows; exit 1 if any does.
    #[command(after_help = CONFIGURATION_HELP)]
    Check,
    /// Recompute every counter from the rows (writers wait meanwhile).
    #[command(after_help = CONFIGURATION_HELP)]
    Rebuild,
}

/// Arguments of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The tenant the token is for.
    #[arg(long)]
    pub project_id: String,
    /// A role to grant; repeat for several (e.g. `--role admin`).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// How long the token is valid, e.g. `1h`, `30m`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The user (`sub` claim).
    #[arg(long, default_value = "csbs-developer")]
    pub user: String,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON Lines file, or `-` for standard input.
    pub file: PathBuf,
    /// Items per transaction (default: the `import.batch_size` setting, else 2000 on PostgreSQL
    /// and 20000 on SQLite).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Connections writing at once on PostgreSQL (default: the `import.writers` setting).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: Option<u16>,
}

/// Arguments of `seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// How many items to generate.
    #[arg(long)]
    pub items: u64,
    /// How many tenants share them (one holds about 60%).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub projects: u32,
    /// The random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Items per transaction (default: the `import.batch_size` setting, else 2000 on PostgreSQL
    /// and 20000 on SQLite).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Connections writing at once on PostgreSQL (default: the `import.writers` setting).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: Option<u16>,
}
