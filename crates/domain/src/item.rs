//! A backup item as the service stores it: the filterable fields, validated, beside the whole
//! public document.

use serde_json::{Map, Value};

use crate::{
    format_timestamp, normalize_ip, parse_timestamp, BackupStatus, ItemId, Micros, ProjectId,
    TextValue,
};

/// A refused item document: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field '{field}': {reason}")]
pub struct ItemError {
    /// The field at fault, as a dotted path (`extend_info.resource_name`).
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

impl ItemError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// One backup item: its tenant and policy, the fields that filters and sorting use, and the
/// public document (spec §2) exactly as it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    pub project_id: ProjectId,
    pub id: ItemId,
    pub name: String,
    pub status: BackupStatus,
    pub checkpoint_id: ItemId,
    pub resource_id: String,
    pub resource_type: String,
    /// `extend_info.resource_name`.
    pub resource_name: Option<String>,
    /// `extend_info.resource_az`.
    pub resource_az: Option<String>,
    /// `extend_info.image_type`.
    pub image_type: Option<String>,
    pub policy_id: Option<String>,
    /// `backup_data.private_ip`, canonical; absent when the document holds no valid address.
    pub private_ip: Option<String>,
    /// `backup_data.eip`, canonical; absent when the document holds no valid address.
    pub eip: Option<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub protected_at: Option<Micros>,
    /// The public item object as JSON text: unknown keys kept, numbers as they came.
    pub document: String,
}

impl BackupRecord {
    /// Validates one imported or ingested item: the object of spec §2 plus `project_id`
    /// (required) and `policy_id` (optional, may be null).
    ///
    /// The stored document is the object without `project_id` and `policy_id` (they are not
    /// part of the public object), with ids and times rewritten to their canonical form so
    /// that the document always agrees with the columns. `updated_at`, when absent, is
    /// `created_at`. Every other key, known or not, is kept as it came.
    pub fn from_json(value: Value) -> Result<Self, ItemError> {
        let Value::Object(mut object) = value else {
            return Err(ItemError::new("(item)", "must be a JSON object"));
        };
        let project_id = match object.remove("project_id") {
            Some(Value::String(text)) => ProjectId::parse("project_id", &text)
                .map_err(|e| ItemError::new("project_id", e.reason))?,
            Some(_) => return Err(ItemError::new("project_id", "must be a string")),
            None => return Err(ItemError::new("project_id", "is required")),
        };
        let policy_id = match object.remove("policy_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(bounded_text("policy_id", &text)?),
            Some(_) => return Err(ItemError::new("policy_id", "must be a string or null")),
        };

        let id = uuid_field(&mut object, "id")?;
        let checkpoint_id = uuid_field(&mut object, "checkpoint_id")?;
        let name = required_string(&object, "name")?;
        if name.chars().count() > TextValue::MAX_CHARS {
            return Err(ItemError::new(
                "name",
                "must be at most 255 characters long",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(ItemError::new(
                "name",
                "must not contain control characters",
            ));
        }
        check_types(&object)?;
        let status_text = required_string(&object, "status")?;
        let status = BackupStatus::parse("status", &status_text)
            .map_err(|e| ItemError::new("status", e.reason))?;
        let resource_id = bounded_text("resource_id", &required_string(&object, "resource_id")?)?;
        let resource_type =
            bounded_text("resource_type", &required_string(&object, "resource_type")?)?;

        let created_at = time_field(&mut object, "created_at")?
            .ok_or_else(|| ItemError::new("created_at", "is required"))?;
        let updated_at = time_field(&mut object, "updated_at")?.unwrap_or(created_at);
        object.insert(
            "updated_at".into(),
            Value::String(format_timestamp(updated_at)),
        );
        let protected_at = time_field(&mut object, "protected_at")?;

        let (resource_name, resource_az, image_type) = match object.get("extend_info") {
            None | Some(Value::Null) => (None, None, None),
            Some(Value::Object(info)) => (
                optional_string(info, "extend_info", "resource_name")?,
                optional_string(info, "extend_info", "resource_az")?,
                optional_string(info, "extend_info", "image_type")?,
            ),
            Some(_) => return Err(ItemError::new("extend_info", "must be an object")),
        };
        let (private_ip, eip) = match object.get("backup_data") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(data)) => (ip_field(data, "private_ip")?, ip_field(data, "eip")?),
            Some(_) => return Err(ItemError::new("backup_data", "must be an object")),
        };

        check_numbers(&object)?;
        let document = Value::Object(object).to_string();
        if document.len() > MAX_ITEM_BYTES {
            return Err(too_large(&document));
        }
        Ok(Self {
            project_id,
            id,
            name,
            status,
            checkpoint_id,
            resource_id,
            resource_type,
            resource_name,
            resource_az,
            image_type,
            policy_id,
            private_ip,
            eip,
            created_at,
            updated_at,
            protected_at,
            document,
        })
    }
}

/// The most bytes one stored item document may have (its JSON text). A real item, with a
/// dozen volumes, is a few kilobytes; the bound keeps an item (status changes merge into
/// `extend_info` without end) and so a list page of them from growing without limit.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;

/// The refusal of a document over [`MAX_ITEM_BYTES`], naming its largest top-level field: the
/// one to shrink.
fn too_large(document: &str) -> ItemError {
    let largest = serde_json::from_str::<Map<String, Value>>(document)
        .ok()
        .and_then(|object| {
            object
                .iter()
                .map(|(key, value)| (value.to_string().len(), key.clone()))
                .max()
        });
    let (field, size) = match largest {
        Some((size, key)) => (key, size),
        None => ("(item)".to_owned(), document.len()),
    };
    ItemError::new(
        field,
        format!(
            "makes the item {} bytes long ({size} of them this field's), over the limit of \
             {MAX_ITEM_BYTES} bytes",
            document.len()
        ),
    )
}

/// Every number in the document must be one that JSON readers can hold: `1e999999` is valid
/// JSON, but a JavaScript client reads it as `Infinity` (and most others as an error), so it is
/// refused rather than stored and served. (Numbers are otherwise kept as written.)
fn check_numbers(object: &Map<String, Value>) -> Result<(), ItemError> {
    let mut pending: Vec<(String, &Value)> = object
        .iter()
        .map(|(key, value)| (key.clone(), value))
        .collect();
    while let Some((path, value)) = pending.pop() {
        match value {
            Value::Number(number) if number.as_f64().is_none_or(|n| !n.is_finite()) => {
                return Err(ItemError::new(
                    path,
                    format!("{number} is beyond the range of a double-precision number"),
                ));
            }
            Value::Array(elements) => pending.extend(
                elements
                    .iter()
                    .enumerate()
                    .map(|(i, element)| (format!("{path}[{i}]"), element)),
            ),
            Value::Object(members) => pending.extend(
                members
                    .iter()
                    .map(|(key, member)| (format!("{path}.{key}"), member)),
            ),
            _ => {}
        }
    }
    Ok(())
}

/// The JSON type a known field of spec §2 must have (`null` is always allowed: optional fields
/// may be null).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Bool,
    Object,
    List,
}

impl Kind {
    fn admits(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (_, Value::Null)
                | (Kind::Text, Value::String(_))
                | (Kind::Number, Value::Number(_))
                | (Kind::Bool, Value::Bool(_))
                | (Kind::Object, Value::Object(_))
                | (Kind::List, Value::Array(_))
        )
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Object => "an object",
            Kind::List => "a list",
        }
    }
}

const BACKUP_DATA_FIELDS: &[(&str, Kind)] = &[
    ("eip", Kind::Text),
    ("private_ip", Kind::Text),
    ("ram", Kind::Number),
    ("vcpus", Kind::Number),
    ("disk", Kind::Number),
    ("imagetype", Kind::Text),
    ("cloudservicetype", Kind::Text),
    ("__openstack_region_name", Kind::Text),
];

const EXTEND_INFO_FIELDS: &[(&str, Kind)] = &[
    ("auto_trigger", Kind::Bool),
    ("average_speed", Kind::Number),
    ("copy_from", Kind::Text),
    ("copy_status", Kind::Text),
    ("fail_code", Kind::Object),
    ("fail_op", Kind::Text),
    ("fail_reason", Kind::Text),
    ("image_type", Kind::Text),
    ("incremental", Kind::Bool),
    ("progress", Kind::Number),
    ("resource_az", Kind::Text),
    ("resource_name", Kind::Text),
    ("resource_type", Kind::Text),
    ("size", Kind::Number),
    ("space_saving_ratio", Kind::Number),
    ("finished_at", Kind::Text),
    ("supported_restore_mode", Kind::Text),
    ("os_images_data", Kind::List),
    ("support_lld", Kind::Bool),
    ("taskid", Kind::Text),
    ("hypervisor_type", Kind::Text),
    ("volume_backups", Kind::List),
];

const VOLUME_BACKUP_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("name", Kind::Text),
    ("status", Kind::Text),
    ("bootable", Kind::Bool),
    ("incremental", Kind::Bool),
    ("image_type", Kind::Text),
    ("size", Kind::Number),
    ("average_speed", Kind::Number),
    ("space_saving_ratio", Kind::Number),
    ("source_volume_id", Kind::Text),
    ("source_volume_size", Kind::Number),
    ("source_volume_name", Kind::Text),
    ("snapshot_id", Kind::Text),
];

fn check_fields(
    object: &Map<String, Value>,
    path: &str,
    fields: &[(&str, Kind)],
) -> Result<(), ItemError> {
    for (field, kind) in fields {
        if let Some(value) = object.get(*field) {
            if !kind.admits(value) {
                return Err(ItemError::new(
                    format!("{path}.{field}"),
                    format!("must be {} or null", kind.name()),
                ));
            }
        }
    }
    Ok(())
}

/// The elements of the list at `key` (when it is one) must be objects whose known fields
/// have their types.
fn check_list_of_objects(
    object: &Map<String, Value>,
    path: &str,
    key: &str,
    fields: &[(&str, Kind)],
) -> Result<(), ItemError> {
    if let Some(Value::Array(elements)) = object.get(key) {
        for (i, element) in elements.iter().enumerate() {
            let element_path = format!("{path}.{key}[{i}]");
            let Value::Object(members) = element else {
                return Err(ItemError::new(element_path, "must be an object"));
            };
            check_fields(members, &element_path, fields)?;
        }
    }
    Ok(())
}

/// The known fields of spec §2 have the types the API describes, so that every stored item
/// can be answered as documented; unknown keys are free.
fn check_types(object: &Map<String, Value>) -> Result<(), ItemError> {
    check_fields(
        object,
        "(item)",
        &[("description", Kind::Text), ("tags", Kind::List)],
    )
    .map_err(|e| ItemError::new(e.field.trim_start_matches("(item)."), e.reason))?;
    check_list_of_objects(
        object,
        "(item)",
        "tags",
        &[("key", Kind::Text), ("value", Kind::Text)],
    )
    .map_err(|e| ItemError::new(e.field.trim_start_matches("(item)."), e.reason))?;
    if let Some(Value::Object(data)) = object.get("backup_data") {
        check_fields(data, "backup_data", BACKUP_DATA_FIELDS)?;
    }
    if let Some(Value::Object(info)) = object.get("extend_info") {
        check_fields(info, "extend_info", EXTEND_INFO_FIELDS)?;
        check_list_of_objects(info, "extend_info", "volume_backups", VOLUME_BACKUP_FIELDS)?;
        check_list_of_objects(
            info,
            "extend_info",
            "os_images_data",
            &[("image_id", Kind::Text)],
        )?;
    }
    Ok(())
}

fn required_string(object: &Map<String, Value>, field: &str) -> Result<String, ItemError> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(ItemError::new(field, "must be a string")),
        None => Err(ItemError::new(field, "is required")),
    }
}

fn bounded_text(field: &str, text: &str) -> Result<String, ItemError> {
    TextValue::parse(field, text)
        .map(|value| value.as_str().to_owned())
        .map_err(|e| ItemError::new(field, e.reason))
}

fn optional_string(
    object: &Map<String, Value>,
    parent: &str,
    field: &str,
) -> Result<Option<String>, ItemError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().any(char::is_control) => Err(ItemError::new(
            format!("{parent}.{field}"),
            "must not contain control characters",
        )),
        Some(Value::String(text)) if text.chars().count() <= TextValue::MAX_CHARS => {
            Ok(Some(text.clone()))
        }
        Some(Value::String(_)) => Err(ItemError::new(
            format!("{parent}.{field}"),
            "must be at most 255 characters long",
        )),
        Some(_) => Err(ItemError::new(
            format!("{parent}.{field}"),
            "must be a string or null",
        )),
    }
}

/// Reads a UUID field and writes its canonical form back into the document.
fn uuid_field(object: &mut Map<String, Value>, field: &str) -> Result<ItemId, ItemError> {
    let text = required_string(object, field)?;
    let id = ItemId::parse(field, &text).map_err(|e| ItemError::new(field, e.reason))?;
    object.insert(field.into(), Value::String(id.as_str().to_owned()));
    Ok(id)
}

/// Reads an optional time field and writes its canonical wire form back into the document.
fn time_field(object: &mut Map<String, Value>, field: &str) -> Result<Option<Micros>, ItemError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let micros =
                parse_timestamp(field, text).map_err(|e| ItemError::new(field, e.reason))?;
            object.insert(field.into(), Value::String(format_timestamp(micros)));
            Ok(Some(micros))
        }
        Some(_) => Err(ItemError::new(field, "must be a time string or null")),
    }
}

/// An address in `backup_data`: canonical when valid. Empty strings and values that are no
/// address (real engines report `""` for a server without a public IP) are kept in the
/// document but match no `ip` filter.
fn ip_field(data: &Map<String, Value>, field: &str) -> Result<Option<String>, ItemError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(normalize_ip(field, text).ok()),
        Some(_) => Err(ItemError::new(
            format!("backup_data.{field}"),
            "must be a string or null",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parsed from text, not built with `json!`, so that number spellings survive.
    fn example() -> Value {
        serde_json::from_str(
            r#"{"id": "7B99ACFD-18C3-4F26-9D39-B4EBD2EA3E12", "name": "backup-c2c", "description": "nightly",
             "status": "available", "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4",
             "resource_id": "f8ddc472-cf00-4384-851e-5f2a68c33762", "resource_type": "OS::Nova::Server",
             "created_at": "2018-08-14T07:53:15.663766", "updated_at": "2018-08-17T04:33:58.025327",
             "protected_at": null, "tags": [],
             "backup_data": {"eip": "80.158.17.102", "private_ip": "192.168.0.209", "ram": 8192},
             "extend_info": {"average_speed": 25.2, "space_saving_ratio": 6.5, "copy_from": null,
               "resource_az": "eu-de-02", "resource_name": "ecs-web-01", "image_type": "backup",
               "future_key": {"nested": [1, 2.50, null]}},
             "project_id": "tenant-a", "policy_id": null}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_complete_item_is_accepted_and_its_document_kept() {
        let record = BackupRecord::from_json(example()).unwrap();
        assert_eq!(record.project_id.as_str(), "tenant-a");
        assert_eq!(record.id.as_str(), "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12");
        assert_eq!(record.policy_id, None);
        assert_eq!(record.resource_name.as_deref(), Some("ecs-web-01"));
        assert_eq!(record.resource_az.as_deref(), Some("eu-de-02"));
        assert_eq!(record.image_type.as_deref(), Some("backup"));
        assert_eq!(record.private_ip.as_deref(), Some("192.168.0.209"));
        assert_eq!(record.eip.as_deref(), Some("80.158.17.102"));
        assert_eq!(
            format_timestamp(record.created_at),
            "2018-08-14T07:53:15.663766"
        );
        let document: Value = serde_json::from_str(&record.document).unwrap();
        assert!(document.get("project_id").is_none());
        assert!(document.get("policy_id").is_none());
        assert_eq!(document["id"], "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12");
        assert!(record.document.contains("\"average_speed\":25.2"));
        assert!(record.document.contains("\"nested\":[1,2.50,null]"));
        assert!(record.document.contains("\"copy_from\":null"));
        assert!(document["protected_at"].is_null());
    }

    #[test]
    fn numbers_beyond_a_double_are_refused() {
        for (text, field) in [
            (r#""extend_info": {"size": 1e999999}"#, "extend_info.size"),
            (r#""extend_info": {"size": -1e400}"#, "extend_info.size"),
            (r#""backup_data": {"ram": 1e309}"#, "backup_data.ram"),
            (
                r#""extra": [1, {"deep": [2, 1E+99999]}]"#,
                "extra[1].deep[1]",
            ),
        ] {
            let mut value = example();
            let patch: Value = serde_json::from_str(&format!("{{{text}}}")).unwrap();
            for (key, member) in patch.as_object().unwrap() {
                value[key] = member.clone();
            }
            let error = BackupRecord::from_json(value).unwrap_err();
            assert_eq!(error.field, field, "{text}: {error}");
        }
        // Large, tiny and precise numbers that a double holds are kept as they came.
        let mut value = example();
        value["extra"] =
            serde_json::from_str("[1.7976931348623157e308, 1e-400, 0.1000000000000000000001]")
                .unwrap();
        let record = BackupRecord::from_json(value).unwrap();
        assert!(record.document.contains("1e-400"), "{}", record.document);
    }

    #[test]
    fn an_item_is_bounded_in_size_and_the_largest_field_named() {
        let mut value = example();
        value["extend_info"]["fail_reason"] = json!("x".repeat(MAX_ITEM_BYTES));
        let error = BackupRecord::from_json(value).unwrap_err();
        assert_eq!(error.field, "extend_info", "{error}");
        assert!(error.reason.contains("65536"), "{error}");

        let mut value = example();
        value["extend_info"]["fail_reason"] = json!("x".repeat(MAX_ITEM_BYTES - 2000));
        assert!(
            BackupRecord::from_json(value).is_ok(),
            "just within the bound"
        );
    }

    #[test]
    fn updated_at_defaults_to_created_at() {
        let mut value = example();
        value.as_object_mut().unwrap().remove("updated_at");
        let record = BackupRecord::from_json(value).unwrap();
        assert_eq!(record.updated_at, record.created_at);
        assert!(record
            .document
            .contains("\"updated_at\":\"2018-08-14T07:53:15.663766\""));
    }

    #[test]
    fn times_with_zones_are_stored_in_utc() {
        let mut value = example();
        value["created_at"] = json!("2018-08-14T09:53:15+02:00");
        let record = BackupRecord::from_json(value).unwrap();
        assert!(record
            .document
            .contains("\"created_at\":\"2018-08-14T07:53:15.000000\""));
    }

    #[test]
    fn refused_items_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("project_id");
                }),
                "project_id",
            ),
            (Box::new(|v| v["project_id"] = json!("a b")), "project_id"),
            (Box::new(|v| v["policy_id"] = json!(5)), "policy_id"),
            (Box::new(|v| v["id"] = json!("x")), "id"),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("id");
                }),
                "id",
            ),
            (Box::new(|v| v["checkpoint_id"] = json!(1)), "checkpoint_id"),
            (Box::new(|v| v["status"] = json!("gone")), "status"),
            (Box::new(|v| v["name"] = json!(null)), "name"),
            (Box::new(|v| v["resource_id"] = json!("")), "resource_id"),
            (
                Box::new(|v| v["created_at"] = json!("2018-08-14")),
                "created_at",
            ),
            (Box::new(|v| v["updated_at"] = json!(5)), "updated_at"),
            (
                Box::new(|v| v["protected_at"] = json!("never")),
                "protected_at",
            ),
            (Box::new(|v| v["tags"] = json!({})), "tags"),
            (Box::new(|v| v["extend_info"] = json!([])), "extend_info"),
            (
                Box::new(|v| v["extend_info"]["resource_name"] = json!(5)),
                "extend_info.resource_name",
            ),
            (
                Box::new(|v| v["backup_data"]["eip"] = json!(5)),
                "backup_data.eip",
            ),
            (Box::new(|v| v["description"] = json!(5)), "description"),
            (Box::new(|v| v["name"] = json!("a\u{0}b")), "name"),
            (
                Box::new(|v| v["extend_info"]["resource_az"] = json!("az\u{0}")),
                "extend_info.resource_az",
            ),
            (
                Box::new(|v| v["extend_info"]["progress"] = json!("half")),
                "extend_info.progress",
            ),
            (
                Box::new(|v| v["extend_info"]["average_speed"] = json!("fast")),
                "extend_info.average_speed",
            ),
            (
                Box::new(|v| v["extend_info"]["volume_backups"] = json!([{"snapshot_id": {}}])),
                "extend_info.volume_backups[0].snapshot_id",
            ),
            (
                Box::new(|v| v["extend_info"]["volume_backups"] = json!([1])),
                "extend_info.volume_backups[0]",
            ),
            (Box::new(|v| v["tags"] = json!([1, 2])), "tags[0]"),
            (Box::new(|v| v["tags"] = json!([{"key": 1}])), "tags[0].key"),
            (
                Box::new(|v| v["backup_data"]["ram"] = json!("8G")),
                "backup_data.ram",
            ),
        ];
        for (mutate, field) in cases {
            let mut value = example();
            mutate(&mut value);
            let err = BackupRecord::from_json(value).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        assert_eq!(
            BackupRecord::from_json(json!([])).unwrap_err().field,
            "(item)"
        );
    }

    #[test]
    fn addresses_that_are_not_ips_match_no_filter_but_stay_in_the_document() {
        let mut value = example();
        value["backup_data"]["eip"] = json!("");
        value["backup_data"]["private_ip"] = json!("2001:DB8::0:1");
        let record = BackupRecord::from_json(value).unwrap();
        assert_eq!(record.eip, None);
        assert_eq!(record.private_ip.as_deref(), Some("2001:db8::1"));
        assert!(record.document.contains("\"private_ip\":\"2001:DB8::0:1\""));
    }
}
