//! The diesel description of the tables, kept to the types both backends share (text and
//! 64-bit integers), so that one query serves PostgreSQL and SQLite alike.

/// The columns of a backup item, in the tables' order: the staging SQL of bulk upserts is
/// written from this list (a test holds it to the tables below). On SQLite, `backup_items` also
/// has the counters' virtual bucket columns (`created_hour`, `created_day`), which are computed
/// and never written, so they are not among these.
pub const ITEM_COLUMNS: [&str; 18] = [
    "project_id",
    "id",
    "name",
    "status",
    "checkpoint_id",
    "resource_id",
    "resource_type",
    "resource_name",
    "resource_az",
    "image_type",
    "policy_id",
    "private_ip",
    "eip",
    "created_at_us",
    "updated_at_us",
    "protected_at_us",
    "version",
    "document",
];

/// Declares a table with the columns of a backup item (two tables have them).
macro_rules! backup_item_table {
    ($(#[$doc:meta])* $table:ident) => {
        diesel::table! {
            $(#[$doc])*
            $table (project_id, id) {
                project_id -> Text,
                id -> Text,
                name -> Text,
                status -> Text,
                checkpoint_id -> Text,
                resource_id -> Text,
                resource_type -> Text,
                resource_name -> Nullable<Text>,
                resource_az -> Nullable<Text>,
                image_type -> Nullable<Text>,
                policy_id -> Nullable<Text>,
                private_ip -> Nullable<Text>,
                eip -> Nullable<Text>,
                created_at_us -> BigInt,
                updated_at_us -> BigInt,
                protected_at_us -> Nullable<BigInt>,
                version -> BigInt,
                document -> Text,
            }
        }
    };
}

backup_item_table! {
    /// One row per backup item. Times are microseconds since the Unix epoch (UTC).
    backup_items
}

backup_item_table! {
    /// A connection's own temporary table for bulk upserts (created by `repository/bulk.rs`, never by a
    /// migration): rows are staged here, then applied to `backup_items` by one statement.
    import_staging
}

diesel::table! {
    /// Answers of ingest requests that carried an `Idempotency-Key`.
    ingest_requests (project_id, idempotency_key) {
        project_id -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        status_code -> Integer,
        response_body -> Text,
        created_at_us -> BigInt,
    }
}

diesel::table! {
    /// Items per tenant and status, kept by triggers.
    item_counts (project_id, status) {
        project_id -> Text,
        status -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    /// Items per tenant, status and UTC day of `created_at`, kept by triggers.
    item_counts_daily (project_id, status, day) {
        project_id -> Text,
        status -> Text,
        day -> Integer,
        n -> BigInt,
    }
}

diesel::table! {
    /// Items per tenant, status and UTC hour of `created_at`, kept by triggers.
    item_counts_hourly (project_id, status, hour) {
        project_id -> Text,
        status -> Text,
        hour -> Integer,
        n -> BigInt,
    }
}

diesel::table! {
    /// Items per tenant, status and combination of resource type, zone, image type and
    /// policy (a missing value kept as `''`), in four spans of `created_at` (`span` 0: all
    /// time, 1: 32-day block, 2: UTC day, 3: UTC hour; `bucket` numbers the span's unit since
    /// the epoch), kept by triggers.
    item_dimension_counts (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id) {
        project_id -> Text,
        status -> Text,
        span -> SmallInt,
        bucket -> Integer,
        resource_type -> Text,
        resource_az -> Text,
        image_type -> Text,
        policy_id -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    /// What an unfinished initial load has set aside (`repository/initial_load.rs`): the
    /// secondary indexes and counter triggers of `backup_items`, with the SQL that makes each.
    deferred_for_initial_load (name) {
        name -> Text,
        kind -> Text,
        definition -> Text,
    }
}

// A count across tenants probes the dimension counters for each tenant of the status counters.
diesel::allow_tables_to_appear_in_same_query!(item_counts, item_dimension_counts);

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::*;

    #[test]
    fn the_item_columns_are_the_tables_columns() {
        let expected = |table: &str| {
            let columns: Vec<String> = ITEM_COLUMNS
                .iter()
                .map(|column| format!("`{table}`.`{column}`"))
                .collect();
            format!("SELECT {} FROM `{table}` -- binds: []", columns.join(", "))
        };
        let items = backup_items::table.select(backup_items::all_columns);
        assert_eq!(
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&items).to_string(),
            expected("backup_items")
        );
        let staging = import_staging::table.select(import_staging::all_columns);
        assert_eq!(
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&staging).to_string(),
            expected("import_staging")
        );
    }
}
