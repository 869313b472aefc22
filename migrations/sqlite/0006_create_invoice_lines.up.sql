CREATE TABLE invoice_lines (
    id          INTEGER PRIMARY KEY,
    invoice_id  INTEGER NOT NULL
        CONSTRAINT invoice_lines_invoice_id_fkey REFERENCES invoices (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    description TEXT NOT NULL,
    quantity    INTEGER NOT NULL DEFAULT 1,
    unit_price  NUMERIC NOT NULL,
    amount      NUMERIC NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT invoice_lines_invoice_position_key UNIQUE (invoice_id, position),
    CONSTRAINT invoice_lines_quantity_check CHECK (quantity > 0),
    CONSTRAINT invoice_lines_unit_price_check CHECK (unit_price >= 0)
);

CREATE INDEX invoice_lines_invoice_id_idx ON invoice_lines (invoice_id);
