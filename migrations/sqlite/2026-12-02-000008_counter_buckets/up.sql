-- The counters' time buckets, defined once (see the PostgreSQL migration): every trigger, the
-- counters check and rebuild, and the Rust side (sql/counters.rs, held to these by a test)
-- read an item's hour and day from these two columns. They are VIRTUAL: computed when read,
-- stored nowhere, so adding them rewrites nothing.
--
-- An hour is floor(created_at_us / 3600000000), whole UTC hours since the epoch, and a day is
-- floor(hour / 24); each floor subtracts the positive remainder first, because integer
-- division truncates toward zero, so that times before 1970 land in the right hour and day.
ALTER TABLE backup_items ADD COLUMN created_hour INTEGER GENERATED ALWAYS AS
    ((created_at_us - (((created_at_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000) VIRTUAL;
ALTER TABLE backup_items ADD COLUMN created_day INTEGER GENERATED ALWAYS AS
    ((created_hour - (((created_hour % 24) + 24) % 24)) / 24) VIRTUAL;

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

DROP TRIGGER backup_items_count_inserts;
DROP TRIGGER backup_items_count_deletes;
DROP TRIGGER backup_items_count_updates;

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
