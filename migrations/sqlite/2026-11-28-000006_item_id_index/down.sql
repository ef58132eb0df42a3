DROP INDEX backup_items_id;
