-- avocet:no-transaction
-- CONCURRENTLY cannot run inside a transaction block. IF NOT EXISTS keeps a
-- re-run harmless (an INVALID index left by a failed build must be dropped first).
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_account_created_idx ON invoices (account_id, created_at);
