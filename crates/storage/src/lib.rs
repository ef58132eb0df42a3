//! The backup item repository of the CSBS query service.
//!
//! One diesel code path serves PostgreSQL (production) and SQLite (the embedded default); the
//! backend is chosen by the database URL's scheme. Queries are built in three stages: a
//! validated [`csbs_domain::BackupFilter`] becomes one `.filter()` per criterion on a boxed
//! query (`filters`), which count and list share, so the two always agree.

mod bulk;
mod connection;
mod counters;
mod errors;
mod explain;
mod filters;
mod ingest;
mod migrations;
mod ordering;
mod pool;
mod prepared;
mod repository;
mod rows;
mod schema;
mod sqlite_timeout;

pub use bulk::{BulkWriter, WriterStopped};
pub use connection::{establish, Backend, ConnectionSettings, DatabaseUrl, DbConnection};
pub use counters::{CounterBucket, CounterDrift};
pub use errors::StorageError;
pub use ingest::{
    Decision, IdempotencyKey, Selection, StoredAnswer, WriteOutcome, IDEMPOTENCY_WINDOW_MICROS,
};
pub use pool::{ConnectionManager, Pool, PoolSettings, PooledDb, MAX_CACHED_STATEMENTS};
pub use repository::{Checkout, ItemPage, PoolState, Repository, StoredItem};
