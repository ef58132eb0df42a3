//! The backup item ("checkpoint item") model of the CSBS query service.
//!
//! Everything here is plain data with constructors that validate: a value of one of these types
//! is known to be good, so the storage and HTTP layers never re-check it. Nothing in this crate
//! knows about HTTP, SQL or configuration.

mod filter;
mod filter_params;
mod ids;
mod ingest;
mod ip;
mod item;
mod lifecycle;
mod page;
mod param_error;
mod query_params;
mod sort;
mod status;
mod time;

pub use filter::{BackupFilter, Criteria, TenantScope};
pub use filter_params::{FilterParam, FilterSpec, FilterValue};
pub use ids::{ItemId, ProjectId, TextValue, PROVIDER_ID};
pub use ingest::{
    deletion_requested, plan_status, plan_write, CurrentItem, IngestError, ItemWrite, Plan,
    StatusUpdate,
};
pub use ip::normalize_ip;
pub use item::{BackupRecord, ItemError, MAX_ITEM_BYTES};
pub use lifecycle::Deletion;
pub use page::{PageRequest, DEFAULT_PAGE_LIMIT, MAX_PAGE_BYTES, MAX_PAGE_LIMIT};
pub use param_error::ParamError;
pub use query_params::{
    parse_bool, CountQuery, DeleteQuery, FromQueryPairs, ListQuery, NoQuery, COUNT_IGNORED_PARAMS,
    MAX_FILTER_VALUES, MAX_VALUES_PER_FILTER,
};
pub use sort::{SortDirection, SortKey, SortSpec};
pub use status::BackupStatus;
pub use time::{format_timestamp, parse_timestamp, Micros};
