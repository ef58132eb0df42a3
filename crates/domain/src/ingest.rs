//! The write rules of the ingest API, as pure functions: what a create, replace or status
//! change does to the stored item, given its current state.
//!
//! Every item carries a version. A write names the version it creates: `1` for a new item,
//! the stored version plus one for a change. A write that names the stored version with the
//! same content is a retry and changes nothing; any other version is stale (or skips one) and
//! is refused, so no write is ever applied over a newer one.

use serde_json::{Map, Value};

use crate::{
    format_timestamp, parse_timestamp, BackupRecord, BackupStatus, ItemError, ItemId, Micros,
    ProjectId,
};

/// The stored state of an item, as a write sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentItem {
    pub record: BackupRecord,
    pub version: i64,
}

/// A write the rules accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Store this state.
    Write(CurrentItem),
    /// A retry of the write that made the stored state: answer as the first time, write
    /// nothing.
    Replay(CurrentItem),
}

impl Plan {
    /// The item state the answer reports.
    pub fn item(&self) -> &CurrentItem {
        match self {
            Plan::Write(item) | Plan::Replay(item) => item,
        }
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body is not a valid item or update.
    #[error("{0}")]
    Invalid(#[from] ItemError),
    /// The item does not exist (a status change needs one).
    #[error("backup {0} does not exist")]
    NotFound(String),
    /// The write is based on another version than the stored one.
    #[error("{}", version_conflict_message(*current, *given))]
    VersionConflict { current: i64, given: i64 },
    /// The lifecycle does not allow the change.
    #[error("status cannot change from {from} to {to}")]
    Transition {
        from: BackupStatus,
        to: BackupStatus,
    },
}

fn version_conflict_message(current: i64, given: i64) -> String {
    if given == current {
        format!(
            "version {given} is already stored with other content; a change must name version {}",
            current + 1
        )
    } else {
        format!(
            "version {given} does not follow the stored version {current}: the write is based on a stale version; \
             a change must name version {}",
            current + 1
        )
    }
}

/// A create-or-replace: the item document and the version it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    pub record: BackupRecord,
    pub version: i64,
}

impl ItemWrite {
    /// Validates a write body for item `id` of `project`: the item object of spec §2 plus
    /// `version` (≥ 1) and optional `policy_id`. `id` and `project_id` in the body, when
    /// present, must match the path. `updated_at` is the service's: it is set to `now`.
    pub fn from_json(
        project: &ProjectId,
        id: Option<&ItemId>,
        body: Value,
        now: Micros,
    ) -> Result<Self, ItemError> {
        let Value::Object(mut object) = body else {
            return Err(field_error("(body)", "must be a JSON object"));
        };
        let version = take_version(&mut object)?;
        match object.get("project_id") {
            None => {}
            Some(Value::String(p)) if p == project.as_str() => {}
            Some(_) => return Err(field_error("project_id", "must be the project of the path")),
        }
        object.insert(
            "project_id".into(),
            Value::String(project.as_str().to_owned()),
        );
        if let Some(id) = id {
            match object.get("id").and_then(Value::as_str) {
                None => {
                    object.insert("id".into(), Value::String(id.as_str().to_owned()));
                }
                Some(given) if ItemId::parse("id", given).ok().as_ref() == Some(id) => {}
                Some(_) => return Err(field_error("id", "must be the id of the path")),
            }
        }
        object.insert("updated_at".into(), Value::String(format_timestamp(now)));
        let record = BackupRecord::from_json(Value::Object(object))?;
        Ok(Self { record, version })
    }
}

/// A status change reported by an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub status: BackupStatus,
    /// The version this change creates.
    pub version: i64,
    /// Members merged into `extend_info` (progress, fail_code, fail_reason, size, finished_at, …).
    pub extend_info: Map<String, Value>,
    /// A new `protected_at`, when given (`null` clears it).
    pub protected_at: Option<Option<Micros>>,
}

impl StatusUpdate {
    /// Validates `{"status", "version", "extend_info"?, "protected_at"?}`; other keys are refused.
    pub fn from_json(body: Value) -> Result<Self, ItemError> {
        let Value::Object(mut object) = body else {
            return Err(field_error("(body)", "must be a JSON object"));
        };
        let version = take_version(&mut object)?;
        let status = match object.remove("status") {
            Some(Value::String(text)) => {
                BackupStatus::parse("status", &text).map_err(|e| field_error("status", e.reason))?
            }
            Some(_) => return Err(field_error("status", "must be a string")),
            None => return Err(field_error("status", "is required")),
        };
        let extend_info = match object.remove("extend_info") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(members)) => members,
            Some(_) => return Err(field_error("extend_info", "must be an object")),
        };
        let protected_at = match object.remove("protected_at") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => Some(Some(
                parse_timestamp("protected_at", &text)
                    .map_err(|e| field_error("protected_at", e.reason))?,
            )),
            Some(_) => return Err(field_error("protected_at", "must be a time string or null")),
        };
        if let Some(key) = object.keys().next() {
            return Err(field_error(
                key.as_str(),
                "is not a field of a status update",
            ));
        }
        Ok(Self {
            status,
            version,
            extend_info,
            protected_at,
        })
    }
}

fn field_error(field: &str, reason: impl Into<String>) -> ItemError {
    ItemError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn take_version(object: &mut Map<String, Value>) -> Result<i64, ItemError> {
    match object.remove("version") {
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|v| *v >= 1)
            .ok_or_else(|| field_error("version", "must be an integer of 1 or more")),
        Some(_) => Err(field_error("version", "must be an integer of 1 or more")),
        None => Err(field_error("version", "is required")),
    }
}

/// The version rule shared by every write: the next version applies, the stored version is a
/// retry (when `same` says the content is that of the stored state), anything else conflicts.
fn check_version(current: &CurrentItem, given: i64, same: bool) -> Result<bool, IngestError> {
    if given == current.version + 1 {
        Ok(true)
    } else if given == current.version && same {
        Ok(false)
    } else {
        Err(IngestError::VersionConflict {
            current: current.version,
            given,
        })
    }
}

/// The document without the service-owned `updated_at`, for comparing two states.
fn content(record: &BackupRecord) -> (Option<Value>, &Option<String>) {
    let mut document: Option<Value> = serde_json::from_str(&record.document).ok();
    if let Some(Value::Object(object)) = document.as_mut() {
        object.remove("updated_at");
    }
    (document, &record.policy_id)
}

/// Plans a create-or-replace.
pub fn plan_write(current: Option<&CurrentItem>, write: ItemWrite) -> Result<Plan, IngestError> {
    let Some(current) = current else {
        if write.version != 1 {
            return Err(IngestError::VersionConflict {
                current: 0,
                given: write.version,
            });
        }
        return Ok(Plan::Write(CurrentItem {
            record: write.record,
            version: 1,
        }));
    };
    let same = content(&current.record) == content(&write.record);
    if !check_version(current, write.version, same)? {
        return Ok(Plan::Replay(current.clone()));
    }
    let (from, to) = (current.record.status, write.record.status);
    if !from.may_become(to) {
        return Err(IngestError::Transition { from, to });
    }
    Ok(Plan::Write(CurrentItem {
        record: write.record,
        version: write.version,
    }))
}

/// Plans a status change at time `now`.
pub fn plan_status(
    current: Option<&CurrentItem>,
    id: &ItemId,
    update: StatusUpdate,
    now: Micros,
) -> Result<Plan, IngestError> {
    let current = current.ok_or_else(|| IngestError::NotFound(id.to_string()))?;
    let mut document: Value = serde_json::from_str(&current.record.document)
        .map_err(|e| field_error("(stored document)", e.to_string()))?;
    let object = document
        .as_object_mut()
        .ok_or_else(|| field_error("(stored document)", "is not an object"))?;
    let info = object
        .entry("extend_info")
        .or_insert_with(|| Value::Object(Map::new()));
    if info.is_null() {
        *info = Value::Object(Map::new());
    }
    let already = current.record.status == update.status
        && info.as_object().is_some_and(|stored| {
            update
                .extend_info
                .iter()
                .all(|(k, v)| stored.get(k) == Some(v))
        })
        && update
            .protected_at
            .is_none_or(|p| p == current.record.protected_at);
    if !check_version(current, update.version, already)? {
        return Ok(Plan::Replay(current.clone()));
    }
    let (from, to) = (current.record.status, update.status);
    if !from.may_become(to) {
        return Err(IngestError::Transition { from, to });
    }
    if let Some(stored) = info.as_object_mut() {
        stored.extend(update.extend_info);
    }
    object.insert("status".into(), Value::String(to.as_str().to_owned()));
    object.insert("updated_at".into(), Value::String(format_timestamp(now)));
    if let Some(protected_at) = update.protected_at {
        object.insert(
            "protected_at".into(),
            protected_at.map_or(Value::Null, |t| Value::String(format_timestamp(t))),
        );
    }
    object.insert(
        "project_id".into(),
        Value::String(current.record.project_id.as_str().to_owned()),
    );
    object.insert(
        "policy_id".into(),
        current
            .record
            .policy_id
            .clone()
            .map_or(Value::Null, Value::String),
    );
    let record = BackupRecord::from_json(document)?;
    Ok(Plan::Write(CurrentItem {
        record,
        version: update.version,
    }))
}

/// The record after a deletion request at `now`: `waiting_delete`, one version on.
pub fn deletion_requested(current: &CurrentItem, now: Micros) -> Result<CurrentItem, IngestError> {
    let update = StatusUpdate {
        status: BackupStatus::WaitingDelete,
        version: current.version + 1,
        extend_info: Map::new(),
        protected_at: None,
    };
    match plan_status(Some(current), &current.record.id, update, now)? {
        Plan::Write(item) | Plan::Replay(item) => Ok(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project() -> ProjectId {
        ProjectId::parse("p", "tenant-a").unwrap()
    }

    fn id() -> ItemId {
        ItemId::parse("id", "7b99acfd-18c3-4f26-9d39-b4ebd2ea3e12").unwrap()
    }

    fn write(status: &str, version: i64, name: &str) -> ItemWrite {
        let body = json!({"name": name, "status": status, "version": version,
            "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "resource_id": "r",
            "resource_type": "OS::Nova::Server", "created_at": "2020-01-01T00:00:00",
            "extend_info": {"progress": 0}});
        ItemWrite::from_json(&project(), Some(&id()), body, 1_000).unwrap()
    }

    fn stored(status: &str, version: i64) -> CurrentItem {
        let w = write(status, version, "n");
        CurrentItem {
            record: w.record,
            version,
        }
    }

    #[test]
    fn creates_start_at_version_one() {
        assert!(matches!(
            plan_write(None, write("waiting_protect", 1, "n")),
            Ok(Plan::Write(_))
        ));
        assert_eq!(
            plan_write(None, write("waiting_protect", 2, "n")),
            Err(IngestError::VersionConflict {
                current: 0,
                given: 2
            })
        );
    }

    #[test]
    fn versions_must_follow() {
        let current = stored("available", 3);
        assert!(matches!(
            plan_write(Some(&current), write("available", 4, "m")),
            Ok(Plan::Write(_))
        ));
        assert!(matches!(
            plan_write(Some(&current), write("available", 3, "n")),
            Ok(Plan::Replay(_))
        ));
        for (version, name) in [(3, "m"), (2, "n"), (5, "m"), (1, "n")] {
            assert!(
                matches!(
                    plan_write(Some(&current), write("available", version, name)),
                    Err(IngestError::VersionConflict { .. })
                ),
                "{version} {name}"
            );
        }
    }

    #[test]
    fn replacing_follows_the_lifecycle() {
        let current = stored("protecting", 1);
        assert_eq!(
            plan_write(Some(&current), write("deleted", 2, "n")),
            Err(IngestError::Transition {
                from: BackupStatus::Protecting,
                to: BackupStatus::Deleted
            })
        );
    }

    #[test]
    fn status_updates_merge_progress_and_set_updated_at() {
        let current = stored("protecting", 1);
        let update = StatusUpdate::from_json(json!({"status": "protecting", "version": 2,
            "extend_info": {"progress": 40, "size": 12.5}}))
        .unwrap();
        let Plan::Write(next) =
            plan_status(Some(&current), &id(), update.clone(), 5_000_000).unwrap()
        else {
            panic!()
        };
        assert_eq!(next.version, 2);
        let doc: Value = serde_json::from_str(&next.record.document).unwrap();
        assert_eq!(doc["extend_info"]["progress"], 40);
        assert_eq!(doc["updated_at"], "1970-01-01T00:00:05.000000");
        assert_eq!(next.record.updated_at, 5_000_000);

        // The same update again, now at the stored version: a retry.
        let retry = StatusUpdate {
            version: 2,
            ..update
        };
        assert!(matches!(
            plan_status(Some(&next), &id(), retry, 9_000_000),
            Ok(Plan::Replay(_))
        ));

        let failed = StatusUpdate::from_json(json!({"status": "error", "version": 3,
            "extend_info": {"fail_code": {"Code": "E1", "Description": "disk"}, "fail_reason": "disk"}})).unwrap();
        let Plan::Write(failed) = plan_status(Some(&next), &id(), failed, 6_000_000).unwrap()
        else {
            panic!()
        };
        assert_eq!(failed.record.status, BackupStatus::Error);
        assert!(failed.record.document.contains("\"fail_reason\":\"disk\""));
    }

    #[test]
    fn refused_status_updates() {
        let current = stored("available", 4);
        let update = |body: Value| StatusUpdate::from_json(body).unwrap();
        assert_eq!(
            plan_status(
                Some(&current),
                &id(),
                update(json!({"status": "protecting", "version": 5})),
                0
            ),
            Err(IngestError::Transition {
                from: BackupStatus::Available,
                to: BackupStatus::Protecting
            })
        );
        assert!(matches!(
            plan_status(
                Some(&current),
                &id(),
                update(json!({"status": "waiting_delete", "version": 4})),
                0
            ),
            Err(IngestError::VersionConflict {
                current: 4,
                given: 4
            })
        ));
        assert!(matches!(
            plan_status(
                None,
                &id(),
                update(json!({"status": "available", "version": 1})),
                0
            ),
            Err(IngestError::NotFound(_))
        ));
        for (body, field) in [
            (json!({"status": "available"}), "version"),
            (json!({"status": "available", "version": 0}), "version"),
            (json!({"status": "available", "version": "2"}), "version"),
            (json!({"version": 2}), "status"),
            (json!({"status": "gone", "version": 2}), "status"),
            (
                json!({"status": "available", "version": 2, "name": "x"}),
                "name",
            ),
            (
                json!({"status": "available", "version": 2, "extend_info": []}),
                "extend_info",
            ),
        ] {
            assert_eq!(StatusUpdate::from_json(body).unwrap_err().field, field);
        }
    }

    #[test]
    fn write_bodies_must_match_the_path() {
        let other = json!({"id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "name": "n", "status": "available",
            "version": 1, "checkpoint_id": "2eefe592-8424-4778-8d0d-962c8a5dd6a4", "resource_id": "r",
            "resource_type": "t", "created_at": "2020-01-01T00:00:00"});
        assert_eq!(
            ItemWrite::from_json(&project(), Some(&id()), other.clone(), 0)
                .unwrap_err()
                .field,
            "id"
        );
        let mut wrong_tenant = other;
        wrong_tenant["id"] = json!(id().as_str());
        wrong_tenant["project_id"] = json!("tenant-b");
        assert_eq!(
            ItemWrite::from_json(&project(), Some(&id()), wrong_tenant, 0)
                .unwrap_err()
                .field,
            "project_id"
        );
    }

    #[test]
    fn deletion_moves_to_waiting_delete() {
        let current = stored("error", 2);
        let next = deletion_requested(&current, 7).unwrap();
        assert_eq!(next.record.status, BackupStatus::WaitingDelete);
        assert_eq!(next.version, 3);
    }
}
