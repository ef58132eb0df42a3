-- Exact counters of backup items, kept by triggers in the same transaction as every write to
-- backup_items, so that no writer can bypass them and a count never sees a half-applied write.
--
-- item_counts:       items per tenant and status (tenant totals, status counts, all tenants).
-- item_counts_daily: items per tenant, status and day of created_at (time ranges: whole days
--                    from here, the partial days at the edges from the items' own index).
-- Days are floor(created_at_us / 86400000000), whole UTC days since the epoch.
--
-- The triggers are statement-level with transition tables: a statement that writes a thousand
-- rows changes each counter once, by the net amount, touching counter rows in key order so
-- that concurrent writers cannot deadlock on them.
CREATE TABLE item_counts (
    project_id text   COLLATE "C" NOT NULL,
    status     text   COLLATE "C" NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (project_id, status)
);
CREATE INDEX item_counts_status ON item_counts (status, project_id) INCLUDE (n);

CREATE TABLE item_counts_daily (
    project_id text    COLLATE "C" NOT NULL,
    status     text    COLLATE "C" NOT NULL,
    day        integer NOT NULL,
    n          bigint  NOT NULL,
    PRIMARY KEY (project_id, status, day)
) ;
CREATE INDEX item_counts_daily_status ON item_counts_daily (status, day, project_id) INCLUDE (n);

-- Counter rows are updated far more often than rows are added: vacuum them eagerly, so that
-- dead versions never slow the sums.
ALTER TABLE item_counts SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 500, fillfactor = 50);
ALTER TABLE item_counts_daily SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, fillfactor = 70);
-- Status churn leaves dead index entries; vacuum the items often enough that index-only
-- counts stay index-only.
ALTER TABLE backup_items SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);

CREATE FUNCTION backup_items_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT project_id, status, ((created_at_us - (((created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000)::integer AS day, count(*) AS n
        FROM new_rows GROUP BY 1, 2, 3
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, day, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_counts AS c (project_id, status, n)
        SELECT project_id, status, sum(n) FROM delta
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION backup_items_count_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT project_id, status, day, sum(n) AS n FROM (
            SELECT project_id, status, ((created_at_us - (((created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000)::integer AS day, count(*) AS n
            FROM new_rows GROUP BY 1, 2, 3
            UNION ALL
            SELECT project_id, status, ((created_at_us - (((created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000)::integer, -count(*)
            FROM old_rows GROUP BY 1, 2, 3
        ) AS changes GROUP BY 1, 2, 3 HAVING sum(n) <> 0
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, day, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_counts AS c (project_id, status, n)
        SELECT project_id, status, sum(n) FROM delta
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION backup_items_count_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT project_id, status, ((created_at_us - (((created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000)::integer AS day, -count(*) AS n
        FROM old_rows GROUP BY 1, 2, 3
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, day, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_counts AS c (project_id, status, n)
        SELECT project_id, status, sum(n) FROM delta
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER backup_items_count_inserts AFTER INSERT ON backup_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_inserts();
CREATE TRIGGER backup_items_count_updates AFTER UPDATE ON backup_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_updates();
CREATE TRIGGER backup_items_count_deletes AFTER DELETE ON backup_items
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_deletes();

-- Counters for the rows that exist already.
INSERT INTO item_counts_daily (project_id, status, day, n)
    SELECT project_id, status,
           ((created_at_us - (((created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000)::integer,
           count(*)
    FROM backup_items GROUP BY 1, 2, 3;
INSERT INTO item_counts (project_id, status, n)
    SELECT project_id, status, count(*) FROM backup_items GROUP BY 1, 2;
