-- An administrator's list across tenants pages by `marker`, an item id without its tenant:
-- finding the marker's sort keys by id alone would otherwise read the whole table. SQLite has
-- no hash index; (id, project_id) also gives the first tenant's item without a sort.
CREATE INDEX backup_items_id ON backup_items (id, project_id);
