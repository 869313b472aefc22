CREATE TABLE invoice_lines (
    id          BIGINT        NOT NULL AUTO_INCREMENT,
    invoice_id  BIGINT        NOT NULL,
    position    INT           NOT NULL,
    description VARCHAR(255)  NOT NULL,
    quantity    INT           NOT NULL DEFAULT 1,
    unit_price  DECIMAL(12,2) NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    created_at  DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY invoice_lines_invoice_position_key (invoice_id, position),
    KEY invoice_lines_invoice_id_idx (invoice_id),
    CONSTRAINT invoice_lines_invoice_id_fkey FOREIGN KEY (invoice_id)
        REFERENCES invoices (id) ON DELETE CASCADE,
    CONSTRAINT invoice_lines_quantity_check CHECK (quantity > 0),
    CONSTRAINT invoice_lines_unit_price_check CHECK (unit_price >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
