-- SQLite has no trigram indexes; substring filters test the tenant's rows, read through its
-- index. This migration keeps the two histories in step.
SELECT 1;
