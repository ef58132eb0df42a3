-- The three trigger functions as they were before the buckets were defined once; writers wait
-- until this commits.
LOCK TABLE backup_items IN SHARE MODE;

DROP TRIGGER backup_items_count_inserts ON backup_items;
DROP TRIGGER backup_items_count_updates ON backup_items;
DROP TRIGGER backup_items_count_deletes ON backup_items;
DROP FUNCTION backup_items_count_changes();
DROP TYPE csbs_counter_change;

CREATE FUNCTION backup_items_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION backup_items_count_updates() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION backup_items_count_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER backup_items_count_inserts AFTER INSERT ON backup_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_inserts();
CREATE TRIGGER backup_items_count_updates AFTER UPDATE ON backup_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_updates();
CREATE TRIGGER backup_items_count_deletes AFTER DELETE ON backup_items
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_deletes();

DROP FUNCTION csbs_day(bigint);
DROP FUNCTION csbs_day_of_hour(integer);
DROP FUNCTION csbs_hour(bigint);
