//! The answers and bodies of the API as types: what a handler builds is what the OpenAPI
//! document describes, since each answer type both serializes the answer and derives its
//! schema; the backup object (`item`) and the request bodies (`bodies`) are described here
//! beside them. Stored documents travel as [`StoredDocument`], byte for byte as they were
//! stored: their numbers keep their digits and their keys their order. The answers that hold
//! them write themselves (`to_json`), splicing the documents' text in.

mod bodies;
mod health;
mod ingest;
mod item;
mod read;

pub use bodies::{BulkItemWrite, BulkRequest, ItemWriteBody, StatusChange};
pub use health::{Alive, Liveness, Readiness, Ready};
pub use ingest::{BulkAnswer, BulkOutcome, BulkResult, IngestItemAnswer};
pub use item::{
    BackupData, CheckpointItem, CopyStatus, ExtendInfo, FailCode, ImageType, OsImage, Tag,
    VolumeBackup,
};
pub use read::{CountAnswer, DeleteAnswer, LinkRel, ListAnswer, PageLink, ShowAnswer};

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::errors::ApiError;

/// A stored document, spliced into answers as the JSON text it is.
///
/// Only documents that `csbs_domain::BackupRecord::from_json` accepted are ever stored, so the
/// text is not parsed again on the way out: parsing it cost 0.8 µs per KiB, a sixth of the
/// service's CPU for a 100-item page. What is checked is that the text is shaped as one object
/// (a brace at each end), which keeps a truncated or emptied row from breaking the answer
/// around it: such a row is a logged 500. (The text is UTF-8: the storage layer reads it as a
/// `String`.)
#[derive(Debug, Clone)]
pub struct StoredDocument(String);

impl StoredDocument {
    /// The stored text, refused (500) unless it is shaped as one JSON object.
    pub fn new(document: String) -> Result<Self, ApiError> {
        let text = document.trim_ascii();
        if text.len() >= 2 && text.starts_with('{') && text.ends_with('}') {
            Ok(Self(document))
        } else {
            Err(ApiError::Internal(
                "a stored document is not a JSON object".to_owned(),
            ))
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never: it holds an object).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A JSON body written with [`JsonWriter`], as a response with `status`.
pub fn json_text(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(body)
}

/// Writes JSON answers that hold stored documents: the documents' text is copied in as it is,
/// everything else is written by serde.
pub(crate) struct JsonWriter {
    out: String,
}

impl JsonWriter {
    /// A writer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
        }
    }

    /// Appends JSON text written by the caller (punctuation, keys it spells out).
    pub(crate) fn raw(&mut self, text: &str) -> &mut Self {
        self.out.push_str(text);
        self
    }

    /// Appends `value` as serde writes it.
    pub(crate) fn value(&mut self, value: &impl Serialize) -> Result<&mut Self, ApiError> {
        self.out.push_str(&to_json(value)?);
        Ok(self)
    }

    /// Appends a stored document.
    pub(crate) fn document(&mut self, document: &StoredDocument) -> &mut Self {
        self.out.push_str(document.as_str());
        self
    }

    /// The text written.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// `answer` as the JSON body of a response with `status`.
pub fn json(status: StatusCode, answer: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let body = to_json(answer)?;
    Ok(HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(body))
}

/// `answer` as JSON text (an ingest answer is kept as text for idempotent replays).
pub fn to_json(answer: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(answer)
        .map_err(|e| ApiError::Internal(format!("an answer could not be written: {e}")))
}

/// What the answer tests share: the property names an answer's schema documents, and those a
/// written answer holds, each sorted, to compare.
#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::Value;
    use utoipa::PartialSchema;

    /// The property names `S`'s schema documents.
    pub(crate) fn documented_properties<S: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(S::schema()).expect("a schema");
        keys(&schema["properties"])
    }

    /// The keys of the JSON object `value`.
    pub(crate) fn keys(value: &Value) -> Vec<String> {
        let mut names: Vec<String> = value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}
