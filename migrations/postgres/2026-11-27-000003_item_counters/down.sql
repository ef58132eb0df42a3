DROP TRIGGER backup_items_count_inserts ON backup_items;
DROP TRIGGER backup_items_count_updates ON backup_items;
DROP TRIGGER backup_items_count_deletes ON backup_items;
DROP FUNCTION backup_items_count_inserts();
DROP FUNCTION backup_items_count_updates();
DROP FUNCTION backup_items_count_deletes();
DROP TABLE item_counts_daily;
DROP TABLE item_counts;
ALTER TABLE backup_items RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor);
