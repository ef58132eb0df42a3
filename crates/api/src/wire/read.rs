//! The answers of the public reads and the deletion.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::CheckpointItem;

/// `GET …/checkpoint_items/count`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountAnswer {
    /// How many backups match.
    #[schema(minimum = 0)]
    pub count: u64,
}

/// `GET …/checkpoint_items`: a page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListAnswer {
    /// The items of this page, in the requested order.
    #[schema(value_type = Vec<CheckpointItem>)]
    pub checkpoint_items: Vec<Box<RawValue>>,
    /// Present only when another item follows this page.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false, min_items = 1, max_items = 1)]
    pub checkpoint_items_links: Vec<PageLink>,
}

/// The link to the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageLink {
    /// Always `next`.
    pub rel: LinkRel,
    /// This request's URL with `marker` set to the page's last id.
    #[schema(format = "uri")]
    pub href: String,
}

/// The relation of a page link.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkRel {
    /// The next page.
    Next,
}

/// `GET …/checkpoint_items/{checkpoint_item_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShowAnswer {
    /// The backup.
    #[schema(value_type = CheckpointItem)]
    pub checkpoint_item: Box<RawValue>,
}

/// A deletion was asked for: `{}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(max_properties = 0)]
pub struct DeleteAnswer {}
