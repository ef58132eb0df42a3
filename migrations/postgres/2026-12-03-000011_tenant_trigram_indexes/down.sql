DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'backup_items_tenant_name_trgm'
                AND relnamespace = current_schema()::regnamespace) THEN
        DROP INDEX backup_items_tenant_name_trgm;
        DROP INDEX IF EXISTS backup_items_tenant_resource_name_trgm;
        EXECUTE 'CREATE INDEX backup_items_name_trgm ON backup_items USING gin (name public.gin_trgm_ops)';
        EXECUTE 'CREATE INDEX backup_items_resource_name_trgm ON backup_items '
            'USING gin (resource_name public.gin_trgm_ops) WHERE resource_name IS NOT NULL';
    END IF;
    DELETE FROM deferred_for_initial_load
        WHERE name IN ('backup_items_tenant_name_trgm', 'backup_items_tenant_resource_name_trgm');
END
$$;
