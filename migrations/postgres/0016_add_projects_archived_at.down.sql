DROP INDEX projects_active_idx;

ALTER TABLE projects DROP COLUMN archived_at;
