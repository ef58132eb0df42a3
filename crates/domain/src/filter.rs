//! What a count or a list asks for: the tenant scope and the criteria of spec §3.

use crate::{BackupRecord, BackupStatus, FilterParam, ItemId, Micros, ProjectId, TextValue};

/// Whose items a query may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// One tenant's items only.
    Project(ProjectId),
    /// Every tenant's items (`all_tenants=true`, administrators only).
    AllTenants,
}

/// The filter criteria of one query. Criteria combine with AND; the values of one
/// criterion combine with OR. An empty list means the criterion was not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criteria {
    /// Exact statuses. When empty, every status but `deleted` matches.
    pub statuses: Vec<BackupStatus>,
    /// Case-sensitive substrings of the name; `%` and `_` are ordinary characters.
    pub names: Vec<TextValue>,
    /// Case-sensitive substrings of `extend_info.resource_name`.
    pub resource_names: Vec<TextValue>,
    /// Exact `resource_id` values.
    pub resource_ids: Vec<TextValue>,
    /// Exact backup record ids.
    pub checkpoint_ids: Vec<ItemId>,
    /// Exact `resource_type` values.
    pub resource_types: Vec<TextValue>,
    /// Exact `extend_info.resource_az` values.
    pub azs: Vec<TextValue>,
    /// Exact `extend_info.image_type` values.
    pub image_types: Vec<TextValue>,
    /// Exact ids of the producing backup policy.
    pub policy_ids: Vec<TextValue>,
    /// Canonical IP addresses matched against `private_ip` or `eip`.
    pub ips: Vec<String>,
    /// Inclusive lower bound of `created_at`.
    pub created_from: Option<Micros>,
    /// Inclusive upper bound of `created_at`.
    pub created_to: Option<Micros>,
}

impl Criteria {
    /// The statuses that match: the ones asked for, or every status but `deleted`.
    pub fn effective_statuses(&self) -> Vec<BackupStatus> {
        if self.statuses.is_empty() {
            BackupStatus::ALL
                .into_iter()
                .filter(|s| *s != BackupStatus::Deleted)
                .collect()
        } else {
            let mut statuses = self.statuses.clone();
            statuses.sort();
            statuses.dedup();
            statuses
        }
    }

    /// Whether `record` meets every criterion: the reference meaning of each filter, against
    /// which the database queries are tested.
    pub fn matches(&self, record: &BackupRecord) -> bool {
        let status_ok = if self.statuses.is_empty() {
            record.status != BackupStatus::Deleted
        } else {
            self.statuses.contains(&record.status)
        };
        let optional_eq = |values: &[TextValue], field: &Option<String>| {
            values.is_empty()
                || field
                    .as_deref()
                    .is_some_and(|f| values.iter().any(|v| v.as_str() == f))
        };
        let contains = |values: &[TextValue], field: Option<&str>| {
            values.is_empty()
                || field.is_some_and(|f| values.iter().any(|v| f.contains(v.as_str())))
        };
        let equals = |values: &[TextValue], field: &str| {
            values.is_empty() || values.iter().any(|v| v.as_str() == field)
        };
        FilterParam::ALL.into_iter().all(|param| match param {
            FilterParam::Status => status_ok,
            FilterParam::Name => contains(&self.names, Some(&record.name)),
            FilterParam::ResourceName => {
                contains(&self.resource_names, record.resource_name.as_deref())
            }
            FilterParam::ResourceId => equals(&self.resource_ids, &record.resource_id),
            FilterParam::CheckpointId => {
                self.checkpoint_ids.is_empty()
                    || self.checkpoint_ids.contains(&record.checkpoint_id)
            }
            FilterParam::ResourceType => equals(&self.resource_types, &record.resource_type),
            FilterParam::Az => optional_eq(&self.azs, &record.resource_az),
            FilterParam::ImageType => optional_eq(&self.image_types, &record.image_type),
            FilterParam::PolicyId => optional_eq(&self.policy_ids, &record.policy_id),
            FilterParam::Ip => {
                self.ips.is_empty()
                    || self.ips.iter().any(|ip| {
                        record.private_ip.as_deref() == Some(ip)
                            || record.eip.as_deref() == Some(ip)
                    })
            }
            FilterParam::StartTime => self
                .created_from
                .is_none_or(|from| record.created_at >= from),
            FilterParam::EndTime => self.created_to.is_none_or(|to| record.created_at <= to),
            // The scope is the filter's, not a criterion; `dec` selects nothing.
            FilterParam::AllTenants | FilterParam::Dec => true,
        })
    }
}

/// A validated query: whose items, and which of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFilter {
    /// The tenant scope, decided after authorisation.
    pub scope: TenantScope,
    /// The criteria from the query string.
    pub criteria: Criteria,
}

impl BackupFilter {
    /// Whether `record` is in scope and meets the criteria.
    pub fn matches(&self, record: &BackupRecord) -> bool {
        let in_scope = match &self.scope {
            TenantScope::Project(project) => &record.project_id == project,
            TenantScope::AllTenants => true,
        };
        in_scope && self.criteria.matches(record)
    }
}
