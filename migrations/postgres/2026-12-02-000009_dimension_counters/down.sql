-- The counters as they were before the dimension counters: writers wait until this commits.
LOCK TABLE backup_items IN SHARE MODE;

-- One counted change: this many items more (or fewer) of a tenant, status and hour.
-- Byte order (COLLATE "C"), as the counters' keys: changes are applied in key order.
CREATE TYPE csbs_counter_change AS (
    project_id text COLLATE "C", status text COLLATE "C", hour integer, n bigint);

-- For every write statement on backup_items: the net change per tenant, status and hour,
-- applied to the hourly, daily and total counters, each touched in key order so that
-- concurrent writers cannot deadlock on them. A statement that changes nothing counted (an
-- update of the document alone) touches no counter.
CREATE OR REPLACE FUNCTION backup_items_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes csbs_counter_change[];
BEGIN
    -- Each branch reads only the transition tables its trigger declares.
    IF TG_OP = 'INSERT' THEN
        changes := ARRAY(
            SELECT (project_id, status, csbs_hour(created_at_us), count(*))::csbs_counter_change
            FROM new_rows GROUP BY project_id, status, csbs_hour(created_at_us));
    ELSIF TG_OP = 'DELETE' THEN
        changes := ARRAY(
            SELECT (project_id, status, csbs_hour(created_at_us), -count(*))::csbs_counter_change
            FROM old_rows GROUP BY project_id, status, csbs_hour(created_at_us));
    ELSE
        changes := ARRAY(
            SELECT (project_id, status, hour, sum(n))::csbs_counter_change FROM (
                SELECT project_id, status, csbs_hour(created_at_us) AS hour, 1 AS n FROM new_rows
                UNION ALL
                SELECT project_id, status, csbs_hour(created_at_us), -1 FROM old_rows
            ) AS moves GROUP BY project_id, status, hour HAVING sum(n) <> 0);
    END IF;
    IF cardinality(changes) = 0 THEN
        RETURN NULL;
    END IF;
    WITH delta AS (
        SELECT * FROM unnest(changes)
    ), hourly AS (
        INSERT INTO item_counts_hourly AS c (project_id, status, hour, n)
            SELECT project_id, status, hour, n FROM delta ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, hour) DO UPDATE SET n = c.n + excluded.n
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, csbs_day_of_hour(hour), sum(n) FROM delta
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

DROP TYPE csbs_dimension_change;
DROP FUNCTION csbs_block_of_day(integer);
DROP TABLE item_dimension_counts;
