ALTER TABLE projects ADD COLUMN archived_at DATETIME(6) NULL;

-- No partial indexes here: index the column alongside the account instead.
CREATE INDEX projects_active_idx ON projects (account_id, archived_at);
