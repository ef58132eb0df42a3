//! The rows written for a [`BackupRecord`]: into `backup_items` itself, or into the
//! per-connection staging table of bulk upserts (see `repository/bulk.rs`). Both have the same columns.

use csbs_domain::BackupRecord;
use diesel::prelude::*;

use crate::schema::{backup_items, import_staging};

/// Defines a row struct borrowing every column from a [`BackupRecord`], at version 1.
macro_rules! item_row {
    ($(#[$attr:meta])* $row:ident) => {
        $(#[$attr])*
        pub(crate) struct $row<'a> {
            pub project_id: &'a str,
            pub id: &'a str,
            pub name: &'a str,
            pub status: &'a str,
            pub checkpoint_id: &'a str,
            pub resource_id: &'a str,
            pub resource_type: &'a str,
            pub resource_name: Option<&'a str>,
            pub resource_az: Option<&'a str>,
            pub image_type: Option<&'a str>,
            pub policy_id: Option<&'a str>,
            pub private_ip: Option<&'a str>,
            pub eip: Option<&'a str>,
            pub created_at_us: i64,
            pub updated_at_us: i64,
            pub protected_at_us: Option<i64>,
            pub version: i64,
            pub document: &'a str,
        }

        impl<'a> From<&'a BackupRecord> for $row<'a> {
            fn from(record: &'a BackupRecord) -> Self {
                Self {
                    project_id: record.project_id.as_str(),
                    id: record.id.as_str(),
                    name: &record.name,
                    status: record.status.as_str(),
                    checkpoint_id: record.checkpoint_id.as_str(),
                    resource_id: &record.resource_id,
                    resource_type: &record.resource_type,
                    resource_name: record.resource_name.as_deref(),
                    resource_az: record.resource_az.as_deref(),
                    image_type: record.image_type.as_deref(),
                    policy_id: record.policy_id.as_deref(),
                    private_ip: record.private_ip.as_deref(),
                    eip: record.eip.as_deref(),
                    created_at_us: record.created_at,
                    updated_at_us: record.updated_at,
                    protected_at_us: record.protected_at,
                    version: 1,
                    document: &record.document,
                }
            }
        }
    };
}

item_row! {
    /// An insertable row; also the full set of changes when an existing row is replaced (the
    /// key columns are skipped there).
    ///
    /// An absent value is written as NULL, never as `DEFAULT`: a `DEFAULT` (or, on SQLite, a
    /// left-out column) makes the SQL text depend on which values are absent, so the prepared
    /// statement could not be reused.
    #[derive(Debug, Insertable, AsChangeset)]
    #[diesel(
        table_name = backup_items,
        primary_key(project_id, id),
        treat_none_as_null = true,
        treat_none_as_default_value = false
    )]
    NewItemRow
}

item_row! {
    /// A row of a bulk upsert, on its way through the staging table.
    #[derive(Debug, Insertable)]
    #[diesel(table_name = import_staging, treat_none_as_default_value = false)]
    StagedItemRow
}

impl<'a> NewItemRow<'a> {
    /// The row of `record` at `version`.
    pub fn versioned(record: &'a BackupRecord, version: i64) -> Self {
        Self {
            version,
            ..Self::from(record)
        }
    }
}
