-- The counters' time buckets, defined once: csbs_hour and csbs_day are what every trigger, the
-- counters check and rebuild, and the Rust side (sql/counters.rs, held to these by a test) mean
-- by "the hour" and "the day" of an item.
--
-- An hour is floor(created_at_us / 3600000000), whole UTC hours since the epoch, and a day is
-- floor(hour / 24). Integer division truncates toward zero, so each floor subtracts the
-- positive remainder first: times before 1970 land in the right hour and day too. Both are
-- plain SQL expressions marked IMMUTABLE, which PostgreSQL inlines into the statements that
-- use them: they cost what the spelled-out arithmetic cost.
--
-- The three trigger functions of the earlier migrations, alike but for how they gather their
-- changes, become one: it gathers the net change per tenant, status and hour from the
-- statement's transition tables, and applies it to the three counters in one place.

-- Writers wait until this migration commits: no write may run between the old triggers and
-- the new ones.
LOCK TABLE backup_items IN SHARE MODE;

CREATE FUNCTION csbs_hour(created_at_us bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000)::integer $$;

CREATE FUNCTION csbs_day_of_hour(hour integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (hour - (((hour % 24) + 24) % 24)) / 24 $$;

CREATE FUNCTION csbs_day(created_at_us bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT csbs_day_of_hour(csbs_hour(created_at_us)) $$;

-- One counted change: this many items more (or fewer) of a tenant, status and hour.
-- Byte order (COLLATE "C"), as the counters' keys: changes are applied in key order.
CREATE TYPE csbs_counter_change AS (
    project_id text COLLATE "C", status text COLLATE "C", hour integer, n bigint);

-- For every write statement on backup_items: the net change per tenant, status and hour,
-- applied to the hourly, daily and total counters, each touched in key order so that
-- concurrent writers cannot deadlock on them. A statement that changes nothing counted (an
-- update of the document alone) touches no counter.
CREATE FUNCTION backup_items_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TRIGGER backup_items_count_inserts ON backup_items;
DROP TRIGGER backup_items_count_updates ON backup_items;
DROP TRIGGER backup_items_count_deletes ON backup_items;
DROP FUNCTION backup_items_count_inserts();
DROP FUNCTION backup_items_count_updates();
DROP FUNCTION backup_items_count_deletes();

CREATE TRIGGER backup_items_count_inserts AFTER INSERT ON backup_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_changes();
CREATE TRIGGER backup_items_count_updates AFTER UPDATE ON backup_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_changes();
CREATE TRIGGER backup_items_count_deletes AFTER DELETE ON backup_items
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION backup_items_count_changes();
