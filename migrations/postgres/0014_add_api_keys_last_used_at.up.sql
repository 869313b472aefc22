-- avocet:no-transaction
-- The index is built CONCURRENTLY, which cannot run inside a transaction block,
-- so this migration runs statement by statement. IF NOT EXISTS keeps a re-run
-- after a failure between the two statements harmless (an INVALID index left
-- by a failed build must be dropped first).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz;

CREATE INDEX CONCURRENTLY IF NOT EXISTS api_keys_last_used_at_idx ON api_keys (last_used_at);
