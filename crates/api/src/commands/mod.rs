//! One module per subcommand.

pub mod counters;
pub mod healthcheck;
pub mod import;
pub mod migrate;
pub mod progress;
pub mod seed;
pub mod serve;
pub mod token;
