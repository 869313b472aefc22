-- Backups (issue 31): one row per backup of one tenant taken with its database's own tool,
-- before a risky migration of a rollout or on request. `before_version` and
-- `before_direction` name the migration it preceded (with `rollout_id`, the link to that
-- migration's history row); `version` is the tenant's newest applied version in the backup
-- (empty when none). Times are Unix epoch ms. A deleted backup's row is deleted.
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    fleet TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    rollout_id TEXT NOT NULL,
    before_version TEXT,
    before_direction TEXT,
    version TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    tool TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT
);
CREATE INDEX backups_by_tenant ON backups (fleet, tenant, started_at);
