ALTER TABLE projects ADD COLUMN archived_at timestamptz;

-- Most queries only look at live projects.
CREATE INDEX projects_active_idx ON projects (account_id) WHERE archived_at IS NULL;
