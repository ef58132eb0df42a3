-- The counters as they were before the dimension counters.
DROP TRIGGER backup_items_count_inserts;
DROP TRIGGER backup_items_count_deletes;
DROP TRIGGER backup_items_count_updates;
DROP TRIGGER item_count_changes_apply;
DROP VIEW item_count_changes;
DROP TABLE item_dimension_counts;
ALTER TABLE backup_items DROP COLUMN created_block;

-- One counted change (this many items more or fewer of a tenant, status, hour and day),
-- applied to the three counters by inserting it here: the one place that writes them. The
-- view holds no rows; its INSTEAD OF trigger does the work.
CREATE VIEW item_count_changes (project_id, status, hour, day, n) AS
    SELECT project_id, status, hour, 0, n FROM item_counts_hourly WHERE 0;

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
END;


CREATE TRIGGER backup_items_count_inserts AFTER INSERT ON backup_items
BEGIN
    INSERT INTO item_count_changes VALUES (NEW.project_id, NEW.status, NEW.created_hour, NEW.created_day, 1);
END;

CREATE TRIGGER backup_items_count_deletes AFTER DELETE ON backup_items
BEGIN
    INSERT INTO item_count_changes VALUES (OLD.project_id, OLD.status, OLD.created_hour, OLD.created_day, -1);
END;

-- Only a change of tenant, status or creation time moves an item between counters.
CREATE TRIGGER backup_items_count_updates AFTER UPDATE OF project_id, status, created_at_us ON backup_items
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.status IS NOT NEW.status OR OLD.created_at_us IS NOT NEW.created_at_us
BEGIN
    INSERT INTO item_count_changes VALUES (OLD.project_id, OLD.status, OLD.created_hour, OLD.created_day, -1);
    INSERT INTO item_count_changes VALUES (NEW.project_id, NEW.status, NEW.created_hour, NEW.created_day, 1);
END;
