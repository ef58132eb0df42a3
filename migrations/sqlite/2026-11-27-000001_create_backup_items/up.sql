-- Backup items, one row each; the same columns and keys as the PostgreSQL schema.
-- SQLite compares text bytewise (BINARY), as the PostgreSQL columns do with COLLATE "C".
-- Times are microseconds since the Unix epoch (UTC).
CREATE TABLE backup_items (
    project_id      TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN (
        'waiting_protect', 'protecting', 'available', 'waiting_restore', 'restoring',
        'error', 'waiting_delete', 'deleting', 'deleted')),
    checkpoint_id   TEXT    NOT NULL,
    resource_id     TEXT    NOT NULL,
    resource_type   TEXT    NOT NULL,
    resource_name   TEXT,
    resource_az     TEXT,
    image_type      TEXT,
    policy_id       TEXT,
    private_ip      TEXT,
    eip             TEXT,
    created_at_us   BIGINT  NOT NULL,
    updated_at_us   BIGINT  NOT NULL,
    protected_at_us BIGINT,
    version         BIGINT  NOT NULL DEFAULT 1,
    document        TEXT    NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE INDEX backup_items_tenant_created ON backup_items (project_id, created_at_us, id);
CREATE INDEX backup_items_tenant_status_created ON backup_items (project_id, status, created_at_us, id);
CREATE INDEX backup_items_status_created ON backup_items (status, created_at_us, id);
CREATE INDEX backup_items_created ON backup_items (created_at_us, id);
CREATE INDEX backup_items_tenant_resource ON backup_items (project_id, resource_id);
CREATE INDEX backup_items_tenant_checkpoint ON backup_items (project_id, checkpoint_id);
CREATE INDEX backup_items_tenant_policy ON backup_items (project_id, policy_id) WHERE policy_id IS NOT NULL;
CREATE INDEX backup_items_tenant_private_ip ON backup_items (project_id, private_ip) WHERE private_ip IS NOT NULL;
CREATE INDEX backup_items_tenant_eip ON backup_items (project_id, eip) WHERE eip IS NOT NULL;
