//! Sample data for CSBS: realistic, deterministic backups ([`SampleData`]) and the pipeline
//! that stores them in a repository ([`seed`]), shared by `csbs-api seed` and the benchmark.
//! Not part of the service: the server never links it for anything but the `seed` command.

mod generator;
mod seed;

pub use generator::{sample_item, SampleData, SPAN_DAYS, SPAN_START};
pub use seed::{seed, SeedOptions, SeedSummary};
