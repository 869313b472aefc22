CREATE INDEX invoices_account_created_idx ON invoices (account_id, created_at);
