-- Items per tenant, status and UTC hour of created_at, kept by the same triggers as the other
-- counters: a tenant's time range is then its whole days from the daily counters, the whole
-- hours of its partial days from these, and only the partial hours at its two ends counted from
-- the items' index (a few hundred rows for the largest tenant, where a partial day is
-- thousands).
--
-- Hours are floor(created_at_us / 3600000000), whole UTC hours since the epoch, and a day is
-- floor(hour / 24), so the triggers derive the daily change from the hourly one. Integer
-- division truncates toward zero in both databases, so each floor subtracts the positive
-- remainder first: times before 1970 land in the right hour and day too.
--
-- The primary key is the only index: reads sum at most two partial days' hours, and an
-- update that leaves every indexed column alone stays a heap-only (HOT) update.
-- Writers wait until this migration commits: a row written between the new triggers and the
-- backfill below would otherwise be missing from the hourly counters.
LOCK TABLE backup_items IN SHARE MODE;

CREATE TABLE item_counts_hourly (
    project_id text    COLLATE "C" NOT NULL,
    status     text    COLLATE "C" NOT NULL,
    hour       integer NOT NULL,
    n          bigint  NOT NULL,
    PRIMARY KEY (project_id, status, hour)
) WITH (fillfactor = 70);
ALTER TABLE item_counts_hourly SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

CREATE OR REPLACE FUNCTION backup_items_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT project_id, status, ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000)::integer AS hour, count(*) AS n
        FROM new_rows GROUP BY 1, 2, 3
    ), hourly AS (
        INSERT INTO item_counts_hourly AS c (project_id, status, hour, n)
            SELECT project_id, status, hour, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, hour) DO UPDATE SET n = c.n + excluded.n
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, (hour - (((hour % 24) + 24) % 24)) / 24, sum(n) FROM delta
            GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_counts AS c (project_id, status, n)
        SELECT project_id, status, sum(n) FROM delta
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION backup_items_count_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT project_id, status, hour, sum(n) AS n FROM (
            SELECT project_id, status, ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000)::integer AS hour, count(*) AS n
            FROM new_rows GROUP BY 1, 2, 3
            UNION ALL
            SELECT project_id, status, ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000)::integer, -count(*)
            FROM old_rows GROUP BY 1, 2, 3
        ) AS changes GROUP BY 1, 2, 3 HAVING sum(n) <> 0
    ), hourly AS (
        INSERT INTO item_counts_hourly AS c (project_id, status, hour, n)
            SELECT project_id, status, hour, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, hour) DO UPDATE SET n = c.n + excluded.n
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, (hour - (((hour % 24) + 24) % 24)) / 24, sum(n) FROM delta
            GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_counts AS c (project_id, status, n)
        SELECT project_id, status, sum(n) FROM delta
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION backup_items_count_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT project_id, status, ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000)::integer AS hour, -count(*) AS n
        FROM old_rows GROUP BY 1, 2, 3
    ), hourly AS (
        INSERT INTO item_counts_hourly AS c (project_id, status, hour, n)
            SELECT project_id, status, hour, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, hour) DO UPDATE SET n = c.n + excluded.n
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, (hour - (((hour % 24) + 24) % 24)) / 24, sum(n) FROM delta
            GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_counts AS c (project_id, status, n)
        SELECT project_id, status, sum(n) FROM delta
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

-- Counters for the rows that exist already.
INSERT INTO item_counts_hourly (project_id, status, hour, n)
    SELECT project_id, status, ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000)::integer, count(*)
    FROM backup_items GROUP BY 1, 2, 3;
