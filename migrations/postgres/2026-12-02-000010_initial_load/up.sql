-- What an initial load (an import into an empty table) has set aside: the secondary indexes
-- of backup_items and its counter triggers, by name, with the statement that makes each
-- again. They are dropped while the rows are loaded and made again once, from all the rows,
-- at the end (as pg_restore builds indexes after the data): building an index from sorted
-- rows and counting the counters in one pass is several times cheaper than keeping them up
-- to date row by row. A row here means an initial load has not finished: counts refuse to
-- use the counters meanwhile, and the next import or seed completes it.
--
-- Bookkeeping of one database, like diesel's own table: not distributed by tenant.
CREATE TABLE deferred_for_initial_load (
    name       text COLLATE "C" PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('index', 'trigger')),
    definition text NOT NULL
);
