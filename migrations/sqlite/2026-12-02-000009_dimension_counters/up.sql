-- Counters by the item's low-cardinality dimensions (see the PostgreSQL migration): for each
-- tenant and status, the items of each combination of resource_type, resource_az, image_type
-- and policy_id (NULL kept as '', which no filter names), in four spans of created_at: all
-- time (0), 32-day blocks (1), UTC days (2) and UTC hours (3). The table is its primary key
-- (WITHOUT ROWID), so a sum over a range of buckets reads the key alone.
CREATE TABLE item_dimension_counts (
    project_id    TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    span          INTEGER NOT NULL CHECK (span BETWEEN 0 AND 3),
    bucket        INTEGER NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_az   TEXT    NOT NULL,
    image_type    TEXT    NOT NULL,
    policy_id     TEXT    NOT NULL,
    n             BIGINT  NOT NULL,
    PRIMARY KEY (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id)
) WITHOUT ROWID;
-- The key is the only index; a count across tenants probes it once per tenant.

-- The 32-day block of created_at, beside its hour and day (virtual: stored nowhere).
ALTER TABLE backup_items ADD COLUMN created_block INTEGER GENERATED ALWAYS AS
    ((created_day - (((created_day % 32) + 32) % 32)) / 32) VIRTUAL;

DROP TRIGGER backup_items_count_inserts;
DROP TRIGGER backup_items_count_deletes;
DROP TRIGGER backup_items_count_updates;
DROP TRIGGER item_count_changes_apply;
DROP VIEW item_count_changes;

-- One counted change (this many items more or fewer of a tenant, status, combination of
-- dimensions and hour), applied to the status counters and the dimension counters by
-- inserting it here: the one place that writes them. The view holds no rows; its INSTEAD OF
-- trigger does the work.
CREATE VIEW item_count_changes
    (project_id, status, resource_type, resource_az, image_type, policy_id, hour, day, block, n) AS
    SELECT project_id, status, '', '', '', '', hour, 0, 0, n FROM item_counts_hourly WHERE 0;

CREATE TRIGGER item_count_changes_apply INSTEAD OF INSERT ON item_count_changes
BEGIN
    INSERT INTO item_counts_hourly (project_id, status, hour, n)
        VALUES (NEW.project_id, NEW.status, NEW.hour, NEW.n)
        ON CONFLICT (project_id, status, hour) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts_daily (project_id, status, day, n)
        VALUES (NEW.project_id, NEW.status, NEW.day, NEW.n)
        ON CONFLICT (project_id, status, day) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts (project_id, status, n)
        VALUES (NEW.project_id, NEW.status, NEW.n)
        ON CONFLICT (project_id, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_dimension_counts
            (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id, n)
        VALUES
            (NEW.project_id, NEW.status, 0, 0, NEW.resource_type, NEW.resource_az, NEW.image_type, NEW.policy_id, NEW.n),
            (NEW.project_id, NEW.status, 1, NEW.block, NEW.resource_type, NEW.resource_az, NEW.image_type, NEW.policy_id, NEW.n),
            (NEW.project_id, NEW.status, 2, NEW.day, NEW.resource_type, NEW.resource_az, NEW.image_type, NEW.policy_id, NEW.n),
            (NEW.project_id, NEW.status, 3, NEW.hour, NEW.resource_type, NEW.resource_az, NEW.image_type, NEW.policy_id, NEW.n)
        ON CONFLICT (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id)
            DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER backup_items_count_inserts AFTER INSERT ON backup_items
BEGIN
    INSERT INTO item_count_changes VALUES (
        NEW.project_id, NEW.status, NEW.resource_type, coalesce(NEW.resource_az, ''),
        coalesce(NEW.image_type, ''), coalesce(NEW.policy_id, ''),
        NEW.created_hour, NEW.created_day, NEW.created_block, 1);
END;

CREATE TRIGGER backup_items_count_deletes AFTER DELETE ON backup_items
BEGIN
    INSERT INTO item_count_changes VALUES (
        OLD.project_id, OLD.status, OLD.resource_type, coalesce(OLD.resource_az, ''),
        coalesce(OLD.image_type, ''), coalesce(OLD.policy_id, ''),
        OLD.created_hour, OLD.created_day, OLD.created_block, -1);
END;

-- Only a change of tenant, status, creation time or a dimension moves an item between
-- counters. (A change of a dimension alone also adds and takes one from the same status
-- counters, which leaves them as they were.)
CREATE TRIGGER backup_items_count_updates
AFTER UPDATE OF project_id, status, created_at_us, resource_type, resource_az, image_type, policy_id
ON backup_items
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.status IS NOT NEW.status
    OR OLD.created_at_us IS NOT NEW.created_at_us OR OLD.resource_type IS NOT NEW.resource_type
    OR coalesce(OLD.resource_az, '') IS NOT coalesce(NEW.resource_az, '')
    OR coalesce(OLD.image_type, '') IS NOT coalesce(NEW.image_type, '')
    OR coalesce(OLD.policy_id, '') IS NOT coalesce(NEW.policy_id, '')
BEGIN
    INSERT INTO item_count_changes VALUES (
        OLD.project_id, OLD.status, OLD.resource_type, coalesce(OLD.resource_az, ''),
        coalesce(OLD.image_type, ''), coalesce(OLD.policy_id, ''),
        OLD.created_hour, OLD.created_day, OLD.created_block, -1);
    INSERT INTO item_count_changes VALUES (
        NEW.project_id, NEW.status, NEW.resource_type, coalesce(NEW.resource_az, ''),
        coalesce(NEW.image_type, ''), coalesce(NEW.policy_id, ''),
        NEW.created_hour, NEW.created_day, NEW.created_block, 1);
END;

-- The rows already stored, once per span.
INSERT INTO item_dimension_counts
        (project_id, status, span, bucket, resource_type, resource_az, image_type, policy_id, n)
    SELECT project_id, status, span,
           CASE span WHEN 0 THEN 0 WHEN 1 THEN created_block WHEN 2 THEN created_day
                ELSE created_hour END,
           resource_type, coalesce(resource_az, ''), coalesce(image_type, ''),
           coalesce(policy_id, ''), count(*)
    FROM backup_items
    CROSS JOIN (SELECT 0 AS span UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
