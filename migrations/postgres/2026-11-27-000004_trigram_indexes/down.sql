DROP INDEX IF EXISTS backup_items_name_trgm;
DROP INDEX IF EXISTS backup_items_resource_name_trgm;
