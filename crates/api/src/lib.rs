//! The CSBS backup query service: the HTTP API over the repository, and the command line.
//!
//! `main.rs` only parses the command line and calls into this library, so tests build the
//! application exactly as production does.

pub mod authentication;
pub mod cli;
pub mod commands;
pub mod envelope;
pub mod errors;
pub mod http_refusals;
pub mod metrics;
pub mod openapi;
pub mod public_url;
pub mod request_body;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod wire;
