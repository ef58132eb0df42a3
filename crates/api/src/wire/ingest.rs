//! The answers of the ingest API.

use csbs_domain::BackupStatus;
use serde::Serialize;
use utoipa::ToSchema;

use super::{CheckpointItem, JsonWriter, StoredDocument};
use crate::errors::ApiError;
use crate::openapi::canonical_uuid;

/// An ingest answer: the item as stored, and its version.
#[derive(Debug, ToSchema)]
pub struct IngestItemAnswer {
    /// The backup as stored, whatever its status.
    #[schema(value_type = CheckpointItem)]
    pub checkpoint_item: StoredDocument,
    /// Its version; the next write names this + 1.
    #[schema(minimum = 1)]
    pub version: i64,
}

impl IngestItemAnswer {
    /// The answer as JSON text, the document spliced in.
    pub fn to_json(&self) -> Result<String, ApiError> {
        let mut json = JsonWriter::with_capacity(self.checkpoint_item.len() + 48);
        json.raw(r#"{"checkpoint_item":"#)
            .document(&self.checkpoint_item)
            .raw(r#","version":"#)
            .value(&self.version)?;
        json.raw("}");
        Ok(json.finish())
    }
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::wire::test_support::{documented_properties, keys};

    #[test]
    fn an_item_answer_is_the_documented_object() {
        let answer = IngestItemAnswer {
            checkpoint_item: StoredDocument::new(r#"{"id":"a","size":10.0}"#.to_owned())
                .expect("an object"),
            version: 7,
        };
        let text = answer.to_json().expect("written");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(keys(&value), documented_properties::<IngestItemAnswer>());
        assert_eq!(value["version"], 7);
        assert!(text.contains(r#""size":10.0"#), "{text}");
    }
}
