-- The control store's first schema: rollouts, their tenants and events, audit, and each
-- tenant's last-known state. Portable between SQLite and PostgreSQL: TEXT and BIGINT only.
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    fleet TEXT NOT NULL,
    direction TEXT NOT NULL,
    spec TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    tenant_count BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    migrations_run BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    waves BIGINT NOT NULL
);
CREATE INDEX rollouts_by_created ON rollouts (created_at, id);
CREATE INDEX rollouts_by_fleet ON rollouts (fleet, created_at);

CREATE TABLE rollout_tenants (
    rollout_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    wave BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, position)
);

CREATE TABLE rollout_events (
    rollout_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);

CREATE TABLE audit (
    rollout_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    method TEXT NOT NULL,
    caller TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_rollout ON audit (rollout_id, at);

CREATE TABLE tenant_state (
    fleet TEXT NOT NULL,
    tenant TEXT NOT NULL,
    current_version BIGINT,
    pending BIGINT NOT NULL,
    failed_versions TEXT NOT NULL,
    error TEXT,
    read_at BIGINT NOT NULL,
    PRIMARY KEY (fleet, tenant)
);
