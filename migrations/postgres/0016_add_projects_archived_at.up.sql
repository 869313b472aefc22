-- avocet:no-transaction
-- The index is built CONCURRENTLY (no transaction block, so statement by
-- statement); IF NOT EXISTS keeps a re-run after a failure harmless.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS archived_at timestamptz;

-- Most queries only look at live projects.
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_active_idx ON projects (account_id) WHERE archived_at IS NULL;
