-- Invoices are financial records: deleting an account that still has
-- invoices is refused (ON DELETE RESTRICT) rather than cascaded.
CREATE TABLE invoices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint        NOT NULL,
    number      text          NOT NULL,
    status      text          NOT NULL DEFAULT 'draft',
    currency    char(3)       NOT NULL DEFAULT 'USD',
    total       numeric(12,2) NOT NULL DEFAULT 0,
    issued_at   timestamptz,
    due_at      timestamptz,
    paid_at     timestamptz,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT invoices_account_id_fkey FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT invoices_account_number_key UNIQUE (account_id, number),
    CONSTRAINT invoices_status_check CHECK (status IN ('draft', 'open', 'paid', 'void')),
    CONSTRAINT invoices_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT invoices_total_check CHECK (total >= 0),
    CONSTRAINT invoices_paid_at_check CHECK (status <> 'paid' OR paid_at IS NOT NULL)
);

CREATE INDEX invoices_account_id_idx ON invoices (account_id);
CREATE INDEX invoices_status_idx ON invoices (status);
