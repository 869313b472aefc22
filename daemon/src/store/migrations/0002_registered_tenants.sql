-- Tenants registered through the API (Fleet.RegisterTenant), loaded at every start. The DSN
-- is a secret: it is never returned by the API.
CREATE TABLE registered_tenants (
    fleet TEXT NOT NULL,
    tenant TEXT NOT NULL,
    dsn TEXT NOT NULL,
    schema_name TEXT,
    labels TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    PRIMARY KEY (fleet, tenant)
);
