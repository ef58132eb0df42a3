-- The triggers as they were before the hourly counters; writers wait until this commits.
LOCK TABLE backup_items IN SHARE MODE;

CREATE OR REPLACE FUNCTION backup_items_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION backup_items_count_updates() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION backup_items_count_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TABLE item_counts_hourly;
