//! The HTTP API, started as production starts it (port 0), on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod checkpoint_items;
mod command_line;
mod errors;
mod hardening;
mod helpers;
mod ingest;
mod keystone;
mod observability;
mod openapi;
mod outages;
mod pooling;
mod readme;
mod request_bodies;
mod rotating_keys;
mod scratch_cluster;
mod shutdown;
mod tenant_isolation;
mod token_attacks;
