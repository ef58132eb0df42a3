-- Substring filters (`name`, `resource_name`) are LIKE '%…%', which a B-tree cannot serve.
-- Trigram GIN indexes can. pg_trgm ships with PostgreSQL but creating an extension needs a
-- privilege some managed databases withhold: without it the filters still work, by scanning
-- the tenant's rows through its B-tree index, and the migration does not fail.
--
-- The extension lives in `public`, never in the schema being migrated, so that dropping one
-- schema cannot take another schema's indexes with it.
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%); substring filters will not use trigram indexes', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX backup_items_name_trgm ON backup_items USING gin (name public.gin_trgm_ops)';
        EXECUTE 'CREATE INDEX backup_items_resource_name_trgm ON backup_items USING gin (resource_name public.gin_trgm_ops) WHERE resource_name IS NOT NULL';
    END IF;
END
$$;
