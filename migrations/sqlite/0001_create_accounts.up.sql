/*
 * Accounts are the tenants of the service. Every other table hangs off an
 * account, directly or indirectly; deleting an account is a rare, audited
 * operation (see invoices, which refuse to be cascaded away).
 *
 * Timestamps are ISO-8601 UTC text with millisecond precision, e.g.
 * 2024-05-01T12:34:56.789Z. Foreign keys are only enforced on connections
 * that enable them; the tool does that, these files do not.
 */
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT 'free',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT accounts_slug_key UNIQUE (slug),
    CONSTRAINT accounts_slug_check CHECK (NOT (slug GLOB '*[^a-z0-9-]*') AND length(slug) BETWEEN 2 AND 63),
    CONSTRAINT accounts_name_check CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT accounts_plan_check CHECK (plan IN ('free', 'pro', 'enterprise'))
);
