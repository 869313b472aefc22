CREATE TABLE invoice_lines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id  bigint        NOT NULL,
    position    integer       NOT NULL,
    description text          NOT NULL,
    quantity    integer       NOT NULL DEFAULT 1,
    unit_price  numeric(12,2) NOT NULL,
    amount      numeric(12,2) NOT NULL,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT invoice_lines_invoice_id_fkey FOREIGN KEY (invoice_id)
        REFERENCES invoices (id) ON DELETE CASCADE,
    CONSTRAINT invoice_lines_invoice_position_key UNIQUE (invoice_id, position),
    CONSTRAINT invoice_lines_quantity_check CHECK (quantity > 0),
    CONSTRAINT invoice_lines_unit_price_check CHECK (unit_price >= 0)
);

CREATE INDEX invoice_lines_invoice_id_idx ON invoice_lines (invoice_id);
