DROP INDEX invoices_account_created_idx ON invoices;
