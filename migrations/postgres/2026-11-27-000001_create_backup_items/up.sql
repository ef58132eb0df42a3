-- Backup items, one row each, distributable by tenant: every key and unique constraint starts
-- with project_id, so the table can be sharded on project_id (e.g. with Citus) unchanged.
--
-- Text columns that are compared or sorted use the "C" collation: byte order, the same as
-- SQLite's, so both backends sort names identically and pages never disagree.
-- Times are microseconds since the Unix epoch (UTC), compared as integers on both backends.
CREATE TABLE backup_items (
    project_id      text   COLLATE "C" NOT NULL,
    id              text   COLLATE "C" NOT NULL,
    name            text   COLLATE "C" NOT NULL,
    status          text   COLLATE "C" NOT NULL,
    checkpoint_id   text   COLLATE "C" NOT NULL,
    resource_id     text   COLLATE "C" NOT NULL,
    resource_type   text   COLLATE "C" NOT NULL,
    resource_name   text   COLLATE "C",
    resource_az     text   COLLATE "C",
    image_type      text   COLLATE "C",
    policy_id       text   COLLATE "C",
    private_ip      text   COLLATE "C",
    eip             text   COLLATE "C",
    created_at_us   bigint NOT NULL,
    updated_at_us   bigint NOT NULL,
    protected_at_us bigint,
    version         bigint NOT NULL DEFAULT 1,
    document        text   NOT NULL,
    PRIMARY KEY (project_id, id),
    CONSTRAINT backup_items_status_known CHECK (status IN (
        'waiting_protect', 'protecting', 'available', 'waiting_restore', 'restoring',
        'error', 'waiting_delete', 'deleting', 'deleted'))
);

-- A tenant's list in the default order (created_at desc, id desc) and its time ranges.
CREATE INDEX backup_items_tenant_created ON backup_items (project_id, created_at_us, id);
-- A tenant's count or list by status, with or without a time range.
CREATE INDEX backup_items_tenant_status_created ON backup_items (project_id, status, created_at_us, id);
-- All tenants by status, and all tenants in time order.
CREATE INDEX backup_items_status_created ON backup_items (status, created_at_us, id);
CREATE INDEX backup_items_created ON backup_items (created_at_us, id);
-- Exact filters that pick few rows.
CREATE INDEX backup_items_tenant_resource ON backup_items (project_id, resource_id);
CREATE INDEX backup_items_tenant_checkpoint ON backup_items (project_id, checkpoint_id);
CREATE INDEX backup_items_tenant_policy ON backup_items (project_id, policy_id) WHERE policy_id IS NOT NULL;
CREATE INDEX backup_items_tenant_private_ip ON backup_items (project_id, private_ip) WHERE private_ip IS NOT NULL;
CREATE INDEX backup_items_tenant_eip ON backup_items (project_id, eip) WHERE eip IS NOT NULL;
