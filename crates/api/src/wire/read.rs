//! The answers of the public reads and the deletion.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CheckpointItem, JsonWriter, StoredDocument};
use crate::errors::ApiError;

/// `GET …/checkpoint_items/count`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountAnswer {
    /// How many backups match.
    #[schema(minimum = 0)]
    pub count: u64,
}

/// `GET …/checkpoint_items`: a page.
#[derive(Debug, ToSchema)]
pub struct ListAnswer {
    /// The items of this page, in the requested order.
    #[schema(value_type = Vec<CheckpointItem>)]
    pub checkpoint_items: Vec<StoredDocument>,
    /// Present only when another item follows this page.
    #[schema(required = false, min_items = 1, max_items = 1)]
    pub checkpoint_items_links: Vec<PageLink>,
}

impl ListAnswer {
    /// The answer as JSON text: the documents spliced in, the links left out when there are
    /// none.
    pub fn to_json(&self) -> Result<String, ApiError> {
        let documents: usize = self.checkpoint_items.iter().map(StoredDocument::len).sum();
        let mut json = JsonWriter::with_capacity(documents + self.checkpoint_items.len() + 256);
        json.raw(r#"{"checkpoint_items":["#);
        for (index, document) in self.checkpoint_items.iter().enumerate() {
            if index > 0 {
                json.raw(",");
            }
            json.document(document);
        }
        json.raw("]");
        if !self.checkpoint_items_links.is_empty() {
            json.raw(r#","checkpoint_items_links":"#)
                .value(&self.checkpoint_items_links)?;
        }
        json.raw("}");
        Ok(json.finish())
    }
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
#[derive(Debug, ToSchema)]
pub struct ShowAnswer {
    /// The backup.
    #[schema(value_type = CheckpointItem)]
    pub checkpoint_item: StoredDocument,
}

impl ShowAnswer {
    /// The answer as JSON text, the document spliced in.
    pub fn to_json(&self) -> String {
        let mut json = JsonWriter::with_capacity(self.checkpoint_item.len() + 24);
        json.raw(r#"{"checkpoint_item":"#)
            .document(&self.checkpoint_item)
            .raw("}");
        json.finish()
    }
}

/// A deletion was asked for: `{}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(max_properties = 0)]
pub struct DeleteAnswer {}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::wire::test_support::{documented_properties, keys};

    fn document(id: &str) -> StoredDocument {
        // As stored: the key order and the digits of the numbers are the writer's own.
        StoredDocument::new(format!(
            r#"{{"id":"{id}","name":"n","backup_data":{{"ram":1.50}},"extend_info":null}}"#
        ))
        .expect("an object")
    }

    #[test]
    fn a_page_is_the_documented_object_with_the_documents_as_stored() {
        let link = PageLink {
            rel: LinkRel::Next,
            href: "http://h/v1/p/checkpoint_items?marker=b".to_owned(),
        };
        let page = ListAnswer {
            checkpoint_items: vec![document("a"), document("b")],
            checkpoint_items_links: vec![link],
        };
        let text = page.to_json().expect("written");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(keys(&value), documented_properties::<ListAnswer>());
        assert_eq!(
            value["checkpoint_items_links"],
            json!([{"rel": "next", "href": "http://h/v1/p/checkpoint_items?marker=b"}])
        );
        // Byte for byte: `1.50` keeps its digits.
        assert!(text.contains(document("a").as_str()) && text.contains(document("b").as_str()));
        assert!(text.contains(r#""ram":1.50"#));
    }

    #[test]
    fn a_last_or_empty_page_has_no_links() {
        for documents in [vec![], vec![document("a")]] {
            let count = documents.len();
            let page = ListAnswer {
                checkpoint_items: documents,
                checkpoint_items_links: vec![],
            };
            let value: Value =
                serde_json::from_str(&page.to_json().expect("written")).expect("JSON");
            assert_eq!(keys(&value), ["checkpoint_items"]);
            assert_eq!(
                value["checkpoint_items"].as_array().map(Vec::len),
                Some(count)
            );
        }
    }

    #[test]
    fn a_shown_item_is_the_documented_object() {
        let answer = ShowAnswer {
            checkpoint_item: document("a"),
        };
        let value: Value = serde_json::from_str(&answer.to_json()).expect("JSON");
        assert_eq!(keys(&value), documented_properties::<ShowAnswer>());
        assert_eq!(value["checkpoint_item"]["id"], "a");
    }

    #[test]
    fn a_row_that_is_not_an_object_is_refused() {
        for damaged in [
            "",
            "  ",
            "{",
            "}",
            "null",
            "[1]",
            r#"{"id":"a""#,
            r#""id":"a"}"#,
        ] {
            assert!(
                StoredDocument::new(damaged.to_owned()).is_err(),
                "{damaged:?} was taken"
            );
        }
        assert!(StoredDocument::new(" {} \n".to_owned()).is_ok());
    }
}
