-- SQLite has no trigram indexes; substring filters scan the tenant's rows through its index.
-- This migration keeps the two histories in step.
SELECT 1;
