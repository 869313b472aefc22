-- Invoices are financial records: deleting an account that still has
-- invoices is refused (ON DELETE RESTRICT) rather than cascaded.
-- Money is NUMERIC with two decimals by convention (SQLite has no DECIMAL).
CREATE TABLE invoices (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL
        CONSTRAINT invoices_account_id_fkey REFERENCES accounts (id) ON DELETE RESTRICT,
    number      TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'draft',
    currency    TEXT NOT NULL DEFAULT 'USD',
    total       NUMERIC NOT NULL DEFAULT 0,
    issued_at   TEXT,
    due_at      TEXT,
    paid_at     TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT invoices_account_number_key UNIQUE (account_id, number),
    CONSTRAINT invoices_status_check CHECK (status IN ('draft', 'open', 'paid', 'void')),
    CONSTRAINT invoices_currency_check CHECK (length(currency) = 3 AND NOT (currency GLOB '*[^A-Z]*')),
    CONSTRAINT invoices_total_check CHECK (total >= 0),
    CONSTRAINT invoices_paid_at_check CHECK (status <> 'paid' OR paid_at IS NOT NULL)
);

CREATE INDEX invoices_account_id_idx ON invoices (account_id);
CREATE INDEX invoices_status_idx ON invoices (status);
