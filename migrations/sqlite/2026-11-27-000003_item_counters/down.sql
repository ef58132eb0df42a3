DROP TRIGGER backup_items_count_inserts;
DROP TRIGGER backup_items_count_deletes;
DROP TRIGGER backup_items_count_updates;
DROP TABLE item_counts_daily;
DROP TABLE item_counts;
