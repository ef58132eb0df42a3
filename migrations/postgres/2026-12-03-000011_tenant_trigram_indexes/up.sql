-- Substring filters for one tenant: the trigram indexes become (project_id, column) GIN
-- indexes, the tenant's key kept by btree_gin. A GIN index intersects the posting lists of
-- all its keys in one scan, skipping through the long ones by the short one's entries, so a
-- tenant's count reads about as many entries as the rarer of its tenant and its trigrams
-- have, instead of every tenant's matches for the substring and then the heap to drop the
-- other tenants'. A count across tenants (all_tenants) uses the same index by its trigrams
-- alone: a GIN index serves any subset of its columns equally well.
--
-- btree_gin ships with PostgreSQL as pg_trgm does, and both are trusted extensions. Where
-- either is missing (a managed database that withholds it), the indexes stay as they are and
-- the migration does not fail.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        RAISE NOTICE 'pg_trgm is not available; substring filters keep scanning the tenant''s rows';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'btree_gin is not available (%); the trigram indexes stay across tenants', SQLERRM;
        RETURN;
    END;
    DROP INDEX IF EXISTS backup_items_name_trgm;
    DROP INDEX IF EXISTS backup_items_resource_name_trgm;
    -- An initial load that has not finished must not make the old indexes again.
    DELETE FROM deferred_for_initial_load
        WHERE name IN ('backup_items_name_trgm', 'backup_items_resource_name_trgm');
    EXECUTE 'CREATE INDEX backup_items_tenant_name_trgm ON backup_items '
        'USING gin (project_id, name public.gin_trgm_ops)';
    EXECUTE 'CREATE INDEX backup_items_tenant_resource_name_trgm ON backup_items '
        'USING gin (project_id, resource_name public.gin_trgm_ops) WHERE resource_name IS NOT NULL';
END
$$;
