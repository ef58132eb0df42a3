-- An administrator's list across tenants pages by `marker`, an item id without its tenant:
-- finding the marker's sort keys by id alone would otherwise read the whole table. A hash
-- index answers equality only, which is all the lookup needs, at a fraction of a B-tree's
-- size on a 36-character id.
CREATE INDEX backup_items_id ON backup_items USING hash (id);
