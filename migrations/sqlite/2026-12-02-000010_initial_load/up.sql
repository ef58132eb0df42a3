-- What an initial load has set aside (see the PostgreSQL migration): the secondary indexes and
-- counter triggers of backup_items, with the statement that makes each again.
CREATE TABLE deferred_for_initial_load (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('index', 'trigger')),
    definition TEXT NOT NULL
);
