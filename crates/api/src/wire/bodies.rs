//! The request bodies of the ingest API as the document describes them. The handlers parse
//! each body as JSON and hand it to the domain's validators (`ItemWrite::from_json`,
//! `StatusUpdate::from_json`), which name the field at fault in every refusal; these types are
//! the documented shape of what those validators accept.

use csbs_domain::BackupStatus;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::item::{BackupData, ExtendInfo, Tag};
use crate::openapi::{any_uuid, nullable, nullable_text_value, request_time, text_value};

/// A create or replace: the item object (spec §2), the version the write creates, and
/// optionally the policy. Ids and times are rewritten to their canonical form; `updated_at`
/// is the service's. Keys the document does not name are stored and answered as they came.
#[derive(ToSchema)]
#[schema(as = ItemWrite)]
pub struct ItemWriteBody {
    /// 1 for a new item, the stored version + 1 for a change; the stored version again is a
    /// retry (answered as the first time if nothing else differs), anything else 409.
    #[schema(minimum = 1)]
    pub version: i64,
    /// The item's id: optional on `PUT` (it must then be the path's), required in a bulk.
    #[schema(schema_with = any_uuid, required = false)]
    pub id: String,
    /// Optional; must be the path's tenant.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", required = false)]
    pub project_id: String,
    /// The backup policy that produced the item: filterable, not part of the answered object.
    #[schema(schema_with = nullable_text_value)]
    pub policy_id: Option<String>,
    /// The name.
    #[schema(max_length = 255)]
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The status; a change must follow the lifecycle.
    pub status: BackupStatus,
    /// The backup record.
    #[schema(schema_with = any_uuid)]
    pub checkpoint_id: String,
    /// The protected server.
    #[schema(schema_with = text_value)]
    pub resource_id: String,
    /// The kind of resource.
    #[schema(schema_with = text_value)]
    pub resource_type: String,
    /// When the backup was made.
    #[schema(schema_with = request_time)]
    pub created_at: String,
    /// Ignored: the service sets it on every write.
    #[schema(required = false)]
    pub updated_at: serde_json::Value,
    /// When its data was protected.
    #[schema(schema_with = nullable_request_time)]
    pub protected_at: Option<String>,
    /// Tags.
    pub tags: Option<Vec<Tag>>,
    /// What was backed up.
    pub backup_data: Option<BackupData>,
    /// Progress and details.
    pub extend_info: Option<ExtendInfo>,
}

fn nullable_request_time() -> ObjectBuilder {
    request_time().schema_type(nullable(Type::String))
}

/// One item of a bulk report: an `ItemWrite` whose `id` is required.
pub struct BulkItemWrite;

impl PartialSchema for BulkItemWrite {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(Ref::from_schema_name("ItemWrite"))
            .item(ObjectBuilder::new().required("id"))
            .description(Some("An `ItemWrite` with its `id`."))
            .into()
    }
}

impl ToSchema for BulkItemWrite {}

/// `POST /ingest/v1/{project_id}/checkpoint_items`: many items, stored all or nothing.
#[derive(ToSchema)]
pub struct BulkRequest {
    /// 1 to `ingest.max_bulk_items` (default 1000) items with distinct ids.
    // `maxItems` is written in by `routes::document`: the running service's setting.
    #[schema(min_items = 1)]
    pub checkpoint_items: Vec<BulkItemWrite>,
}

/// A status change reported by an engine. Keeping the status (to report progress) is always
/// allowed; any other change must follow the lifecycle.
#[derive(ToSchema)]
pub struct StatusChange {
    /// The new status.
    pub status: BackupStatus,
    /// The version this change creates: the stored version + 1 (the stored version again is a
    /// retry).
    #[schema(minimum = 1)]
    pub version: i64,
    /// Members merged into the stored `extend_info` (progress, `fail_code`, sizes, …).
    pub extend_info: Option<ExtendInfo>,
    /// A new `protected_at`; `null` clears it.
    #[schema(schema_with = nullable_request_time)]
    pub protected_at: Option<String>,
}
