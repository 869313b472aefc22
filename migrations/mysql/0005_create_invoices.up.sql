-- Invoices are financial records: deleting an account that still has
-- invoices is refused (ON DELETE RESTRICT) rather than cascaded.
CREATE TABLE invoices (
    id          BIGINT        NOT NULL AUTO_INCREMENT,
    account_id  BIGINT        NOT NULL,
    number      VARCHAR(64)   NOT NULL,
    status      VARCHAR(20)   NOT NULL DEFAULT 'draft',
    currency    CHAR(3)       NOT NULL DEFAULT 'USD',
    total       DECIMAL(12,2) NOT NULL DEFAULT 0,
    issued_at   DATETIME(6)   NULL,
    due_at      DATETIME(6)   NULL,
    paid_at     DATETIME(6)   NULL,
    created_at  DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY invoices_account_number_key (account_id, number),
    KEY invoices_account_id_idx (account_id),
    KEY invoices_status_idx (status),
    CONSTRAINT invoices_account_id_fkey FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT invoices_status_check CHECK (status IN ('draft', 'open', 'paid', 'void')),
    CONSTRAINT invoices_total_check CHECK (total >= 0),
    CONSTRAINT invoices_paid_at_check CHECK (status <> 'paid' OR paid_at IS NOT NULL)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
