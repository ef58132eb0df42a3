DROP TABLE backup_items;
