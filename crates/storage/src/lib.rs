//! The backup item repository of the CSBS query service.
//!
//! One diesel code path serves PostgreSQL (production) and SQLite (the embedded default); the
//! backend is chosen by the database URL's scheme. `repository/` holds the operations (read,
//! write, bulk, maintenance), `sql/` the SQL they are built from: a validated
//! [`csbs_domain::BackupFilter`] becomes one `.filter()` per criterion on a boxed query
//! (`sql::filters`), which count and list share, so the two always agree.

mod connection;
mod errors;
mod migrations;
mod pool;
mod replicas;
mod repository;
mod rows;
mod schema;
mod sql;
mod sqlite_timeout;

pub use connection::{
    check_reachable, establish, Backend, ConnectionSettings, DatabaseUrl, DbConnection,
    MultiBackend, PoolMode,
};
pub use errors::StorageError;
pub use pool::{ConnectionManager, Pool, PoolSettings, PooledDb, MAX_CACHED_STATEMENTS};
pub use replicas::{ReplicaSettings, ReplicaStatus, Replicas};
pub use repository::bulk::{BulkTotals, BulkWriter, WriterStopped};
pub use repository::initial_load::BulkLoad;
pub use repository::write::{
    Decision, IdempotencyKey, Selection, StoredAnswer, WriteOutcome, IDEMPOTENCY_WINDOW_MICROS,
};
pub use repository::{Checkout, ItemPage, PoolState, Repository, StoredItem};
pub use schema::ITEM_COLUMNS;
pub use sql::counters::{CounterBucket, CounterDimensions, CounterDrift};
