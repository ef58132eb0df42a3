//! The answers of the ingest API.

use csbs_domain::BackupStatus;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::CheckpointItem;
use crate::openapi::canonical_uuid;

/// An ingest answer: the item as stored, and its version.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestItemAnswer {
    /// The backup as stored, whatever its status.
    #[schema(value_type = CheckpointItem)]
    pub checkpoint_item: Box<RawValue>,
    /// Its version; the next write names this + 1.
    #[schema(minimum = 1)]
    pub version: i64,
}

/// The outcome of a bulk report, item by item in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAnswer<'a> {
    /// One entry per item.
    #[schema(value_type = Vec<BulkResult>)]
    pub checkpoint_items: Vec<BulkResult<'a>>,
}

/// The outcome for one item of a bulk report.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult<'a> {
    /// The item.
    #[schema(schema_with = canonical_uuid, value_type = String)]
    pub id: &'a str,
    /// Its status now.
    pub status: BackupStatus,
    /// Its version now.
    #[schema(minimum = 1)]
    pub version: i64,
    /// `stored`, or `unchanged` for a retry of the stored version.
    pub result: BulkOutcome,
}

/// What a bulk report did to one item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkOutcome {
    /// Written.
    Stored,
    /// A retry of the stored version: nothing written.
    Unchanged,
}
