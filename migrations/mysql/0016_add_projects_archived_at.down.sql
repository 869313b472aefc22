DROP INDEX projects_active_idx ON projects;

ALTER TABLE projects DROP COLUMN archived_at;
