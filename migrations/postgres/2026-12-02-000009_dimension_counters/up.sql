-- Counters by the item's low-cardinality dimensions: for each tenant and status, the items of
-- each combination of resource_type, resource_az, image_type and policy_id, in four spans of
-- created_at: all time, 32-day blocks, UTC days and UTC hours. A count that filters by any of
-- these dimensions (with statuses and a time range, or without) sums these rows instead of
-- reading the tenant's items: the whole blocks of its range, then the whole days and the
-- whole hours at its ends, and only the partial hours from the items' index.
--
-- The dimension values are open sets (new zones and types appear): a combination gets its row
-- the first time an item has it, so a count is exact for any value, seen before or not. A
-- column without a value (NULL) is kept as '', which no filter can name (filter values are
-- never empty), exactly as NULL matches no filter.
--
-- Blocks are 32 days since the epoch, not calendar months: any aligned partition of time
-- serves a range sum, and this one is the same arithmetic as hours and days.
--
-- One table holds the four spans, so a write statement changes all of them with one upsert,
-- in key order (byte order, COLLATE "C"), as the other counters: concurrent writers cannot
-- deadlock on them.

-- Writers wait until this migration commits: no write may run between the new triggers and
-- the backfill below.
LOCK TABLE backup_items IN SHARE MODE;

CREATE TABLE item_dimension_counts (
    project_id    text     COLLATE "C" NOT NULL,
    status        text     COLLATE "C" NOT NULL,
    -- 0: all time (bucket 0), 1: 32-day block, 2: UTC day, 3: UTC hour.
    span          smallint NOT NULL,
    bucket        integer  NOT NULL,
    resource_type text     COLLATE "C" NOT NULL,
    resource_az   text     COLLATE "C" NOT NULL,
    image_type    text     COLLATE "C" NOT NULL,
    policy_id     text     COLLATE "C" NOT NULL,
    n             bigint   NOT NULL,
    CONSTRAINT item_dimension_counts_span_known CHECK (span BETWEEN 0 AND 3),
    PRIMARY KEY (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id)
) WITH (fillfactor = 70);
-- The key is the only index, and `n` is not in it: a change of a count is then a heap-only
-- (HOT) update that writes no index entry. A bulk write of items spread over years changes
-- thousands of these rows per statement; with `n` in the index (for index-only sums) or a
-- second index by status (for all_tenants), its upserts took two to five times as long.
-- A count across tenants probes the key once per tenant instead (sql/counters.rs).
ALTER TABLE item_dimension_counts SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

CREATE FUNCTION csbs_block_of_day(day integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (day - (((day % 32) + 32) % 32)) / 32 $$;

-- One counted change of the dimension counters: this many items more (or fewer) of a tenant,
-- status, combination of dimensions and hour. The status counters' changes follow from it.
CREATE TYPE csbs_dimension_change AS (
    project_id text COLLATE "C", status text COLLATE "C",
    resource_type text COLLATE "C", resource_az text COLLATE "C",
    image_type text COLLATE "C", policy_id text COLLATE "C",
    hour integer, n bigint);

-- For every write statement on backup_items: the net change per tenant, status, dimensions
-- and hour, applied to the status counters (hourly, daily, total) and to the dimension
-- counters (all four spans), each touched in key order. A statement that changes nothing
-- counted (an update of the document alone) touches no counter; one that changes only a
-- dimension touches only the dimension counters.
CREATE OR REPLACE FUNCTION backup_items_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes csbs_dimension_change[];
BEGIN
    -- Each branch reads only the transition tables its trigger declares.
    IF TG_OP = 'INSERT' THEN
        changes := ARRAY(
            SELECT (project_id, status, resource_type, resource_az, image_type, policy_id,
                    hour, n)::csbs_dimension_change
            FROM (
                SELECT project_id, status, resource_type, coalesce(resource_az, '') AS resource_az,
                       coalesce(image_type, '') AS image_type, coalesce(policy_id, '') AS policy_id,
                       csbs_hour(created_at_us) AS hour, count(*) AS n
                FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6, 7) AS added);
    ELSIF TG_OP = 'DELETE' THEN
        changes := ARRAY(
            SELECT (project_id, status, resource_type, resource_az, image_type, policy_id,
                    hour, -n)::csbs_dimension_change
            FROM (
                SELECT project_id, status, resource_type, coalesce(resource_az, '') AS resource_az,
                       coalesce(image_type, '') AS image_type, coalesce(policy_id, '') AS policy_id,
                       csbs_hour(created_at_us) AS hour, count(*) AS n
                FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6, 7) AS removed);
    ELSE
        changes := ARRAY(
            SELECT (project_id, status, resource_type, resource_az, image_type, policy_id,
                    hour, n)::csbs_dimension_change
            FROM (
                SELECT project_id, status, resource_type, resource_az, image_type, policy_id,
                       hour, sum(n) AS n
                FROM (
                    SELECT project_id, status, resource_type,
                           coalesce(resource_az, '') AS resource_az,
                           coalesce(image_type, '') AS image_type,
                           coalesce(policy_id, '') AS policy_id,
                           csbs_hour(created_at_us) AS hour, 1 AS n FROM new_rows
                    UNION ALL
                    SELECT project_id, status, resource_type, coalesce(resource_az, ''),
                           coalesce(image_type, ''), coalesce(policy_id, ''),
                           csbs_hour(created_at_us), -1 FROM old_rows
                ) AS moves GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(n) <> 0) AS moved);
    END IF;
    IF cardinality(changes) = 0 THEN
        RETURN NULL;
    END IF;
    WITH delta AS (
        SELECT * FROM unnest(changes)
    ), hourly AS (
        INSERT INTO item_counts_hourly AS c (project_id, status, hour, n)
            SELECT project_id, status, hour, sum(n) FROM delta
            GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, hour) DO UPDATE SET n = c.n + excluded.n
    ), daily AS (
        INSERT INTO item_counts_daily AS c (project_id, status, day, n)
            SELECT project_id, status, csbs_day_of_hour(hour), sum(n) FROM delta
            GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (project_id, status, day) DO UPDATE SET n = c.n + excluded.n
    ), total AS (
        INSERT INTO item_counts AS c (project_id, status, n)
            SELECT project_id, status, sum(n) FROM delta
            GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
            ON CONFLICT (project_id, status) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO item_dimension_counts AS c
            (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id, n)
        SELECT d.project_id, d.status, s.span, s.bucket, d.resource_type, d.resource_az,
               d.image_type, d.policy_id, sum(d.n)
        FROM delta AS d CROSS JOIN LATERAL (VALUES
            (0::smallint, 0),
            (1::smallint, csbs_block_of_day(csbs_day_of_hour(d.hour))),
            (2::smallint, csbs_day_of_hour(d.hour)),
            (3::smallint, d.hour)) AS s (span, bucket)
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING sum(d.n) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id)
            DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

DROP TYPE csbs_counter_change;

-- The rows already stored, counted once by hour; the longer spans follow from the hours.
WITH hours AS (
    SELECT project_id, status, resource_type, coalesce(resource_az, '') AS resource_az,
           coalesce(image_type, '') AS image_type, coalesce(policy_id, '') AS policy_id,
           csbs_hour(created_at_us) AS hour, count(*) AS n
    FROM backup_items GROUP BY 1, 2, 3, 4, 5, 6, 7
)
INSERT INTO item_dimension_counts
        (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id, n)
    SELECT h.project_id, h.status, s.span, s.bucket, h.resource_type, h.resource_az,
           h.image_type, h.policy_id, sum(h.n)
    FROM hours AS h CROSS JOIN LATERAL (VALUES
        (0::smallint, 0),
        (1::smallint, csbs_block_of_day(csbs_day_of_hour(h.hour))),
        (2::smallint, csbs_day_of_hour(h.hour)),
        (3::smallint, h.hour)) AS s (span, bucket)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
