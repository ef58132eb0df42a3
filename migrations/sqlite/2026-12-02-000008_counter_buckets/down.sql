-- The triggers as they were before the buckets were defined once.
DROP TRIGGER backup_items_count_inserts;
DROP TRIGGER backup_items_count_deletes;
DROP TRIGGER backup_items_count_updates;

CREATE TRIGGER backup_items_count_inserts AFTER INSERT ON backup_items
BEGIN
    INSERT INTO item_counts_hourly (project_id, status, hour, n)
        VALUES (NEW.project_id, NEW.status, ((NEW.created_at_us - (((NEW.created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000), 1)
        ON CONFLICT (project_id, status, hour) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts_daily (project_id, status, day, n)
        VALUES (NEW.project_id, NEW.status, ((NEW.created_at_us - (((NEW.created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000), 1)
        ON CONFLICT (project_id, status, day) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts (project_id, status, n)
        VALUES (NEW.project_id, NEW.status, 1)
        ON CONFLICT (project_id, status) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER backup_items_count_deletes AFTER DELETE ON backup_items
BEGIN
    INSERT INTO item_counts_hourly (project_id, status, hour, n)
        VALUES (OLD.project_id, OLD.status, ((OLD.created_at_us - (((OLD.created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000), -1)
        ON CONFLICT (project_id, status, hour) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts_daily (project_id, status, day, n)
        VALUES (OLD.project_id, OLD.status, ((OLD.created_at_us - (((OLD.created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000), -1)
        ON CONFLICT (project_id, status, day) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts (project_id, status, n)
        VALUES (OLD.project_id, OLD.status, -1)
        ON CONFLICT (project_id, status) DO UPDATE SET n = n + excluded.n;
END;

-- Only a change of tenant, status or creation time moves an item between counters.
CREATE TRIGGER backup_items_count_updates AFTER UPDATE OF project_id, status, created_at_us ON backup_items
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.status IS NOT NEW.status OR OLD.created_at_us IS NOT NEW.created_at_us
BEGIN
    INSERT INTO item_counts_hourly (project_id, status, hour, n)
        VALUES (OLD.project_id, OLD.status, ((OLD.created_at_us - (((OLD.created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000), -1)
        ON CONFLICT (project_id, status, hour) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts_daily (project_id, status, day, n)
        VALUES (OLD.project_id, OLD.status, ((OLD.created_at_us - (((OLD.created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000), -1)
        ON CONFLICT (project_id, status, day) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts (project_id, status, n)
        VALUES (OLD.project_id, OLD.status, -1)
        ON CONFLICT (project_id, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts_hourly (project_id, status, hour, n)
        VALUES (NEW.project_id, NEW.status, ((NEW.created_at_us - (((NEW.created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000), 1)
        ON CONFLICT (project_id, status, hour) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts_daily (project_id, status, day, n)
        VALUES (NEW.project_id, NEW.status, ((NEW.created_at_us - (((NEW.created_at_us % 86400000000) + 86400000000) % 86400000000)) / 86400000000), 1)
        ON CONFLICT (project_id, status, day) DO UPDATE SET n = n + excluded.n;
    INSERT INTO item_counts (project_id, status, n)
        VALUES (NEW.project_id, NEW.status, 1)
        ON CONFLICT (project_id, status) DO UPDATE SET n = n + excluded.n;
END;

DROP TRIGGER item_count_changes_apply;
DROP VIEW item_count_changes;
ALTER TABLE backup_items DROP COLUMN created_day;
ALTER TABLE backup_items DROP COLUMN created_hour;
