/*
 * Accounts are the tenants of the service. Every other table hangs off an
 * account, directly or indirectly; deleting an account is a rare, audited
 * operation (see invoices, which refuse to be cascaded away).
 */
CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    plan        text        NOT NULL DEFAULT 'free',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_slug_key UNIQUE (slug),
    CONSTRAINT accounts_slug_check CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    CONSTRAINT accounts_name_check CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT accounts_plan_check CHECK (plan IN ('free', 'pro', 'enterprise'))
);

-- Documentation lives in the catalog so psql's \d+ shows it; note that the
-- literals below contain semicolons and an escape string on purpose.
COMMENT ON TABLE accounts IS 'Tenants of the service; every other row belongs to one.';
COMMENT ON COLUMN accounts.slug IS E'URL-safe handle used in subdomains.\nLowercase letters, digits and hyphens only; it can''t change after signup.';
