//! The schema stays shardable by tenant (README "Sharding by tenant"): every primary key and
//! unique constraint of every table includes `project_id`, so that a distributed PostgreSQL
//! (Citus) can enforce it on each shard alone. The other half of the rule, that every query
//! of one tenant reads only that tenant's rows, is checked on the real plans in
//! `query_plans.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use csbs_storage::DbConnection;
use csbs_test_support::{backend_tests, TestDatabase};

/// A key of a table: its name and columns.
#[derive(QueryableByName, Debug)]
struct Key {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    key_name: String,
    #[diesel(sql_type = Text)]
    columns: String,
    #[diesel(sql_type = Bool)]
    primary: bool,
}

/// diesel's own bookkeeping and an initial load's, which a distributed database keeps on the
/// coordinator.
const NOT_SHARDED: &[&str] = &["__diesel_schema_migrations", "deferred_for_initial_load"];

fn keys_of(conn: &mut DbConnection) -> Vec<Key> {
    match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "SELECT c.relname AS table_name, i.relname AS key_name, \
                    string_agg(a.attname, ',' ORDER BY a.attnum) AS columns, \
                    x.indisprimary AS primary \
             FROM pg_index x \
             JOIN pg_class c ON c.oid = x.indrelid \
             JOIN pg_class i ON i.oid = x.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (x.indkey) \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' \
               AND (x.indisprimary OR x.indisunique) \
             GROUP BY c.relname, i.relname, x.indisprimary",
        )
        .load(pg)
        .unwrap(),
        DbConnection::Sqlite(sqlite) => diesel::sql_query(
            // Unique indexes (primary keys, UNIQUE constraints and indexes), and primary keys
            // that are the rowid itself, which have no index of their own.
            "SELECT t.name AS table_name, l.name AS key_name, \
                    (SELECT group_concat(i.name, ',') FROM pragma_index_info(l.name) i) AS columns, \
                    l.origin = 'pk' AS \"primary\" \
             FROM sqlite_master t, pragma_index_list(t.name) l \
             WHERE t.type = 'table' AND l.\"unique\" \
             UNION ALL \
             SELECT t.name, 'rowid primary key', group_concat(c.name, ','), 1 \
             FROM sqlite_master t, pragma_table_info(t.name) c \
             WHERE t.type = 'table' AND c.pk > 0 \
               AND NOT EXISTS (SELECT 1 FROM pragma_index_list(t.name) l WHERE l.origin = 'pk') \
             GROUP BY t.name",
        )
        .load(sqlite)
        .unwrap(),
    }
}

fn every_key_includes_the_tenant(db: TestDatabase) {
    let repository = db.repository();
    let mut conn = repository.connection().unwrap();
    let keys: Vec<Key> = keys_of(&mut conn)
        .into_iter()
        .filter(|key| !NOT_SHARDED.contains(&key.table_name.as_str()))
        .collect();
    for table in [
        "backup_items",
        "ingest_requests",
        "item_counts",
        "item_counts_daily",
        "item_counts_hourly",
    ] {
        assert!(
            keys.iter()
                .any(|key| key.table_name == table && key.primary),
            "{db:?}: {table} has no primary key among {keys:?}"
        );
    }
    for key in &keys {
        assert!(
            key.columns.split(',').any(|column| column == "project_id"),
            "{db:?}: {} of {} ({}) leaves out project_id: a sharded table could not enforce it",
            key.key_name,
            key.table_name,
            key.columns
        );
    }

    // The detector itself: a unique index on the id alone is seen.
    csbs_test_support::execute_sql(
        &repository,
        "CREATE UNIQUE INDEX shard_rule_probe ON backup_items (id)",
    );
    let probe = keys_of(&mut conn)
        .into_iter()
        .find(|key| key.key_name == "shard_rule_probe")
        .expect("the probe index is listed");
    assert_eq!(probe.columns, "id", "{db:?}");
}

backend_tests!(every_key_includes_the_tenant);
