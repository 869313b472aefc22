-- The index must go first: SQLite refuses to drop a column an index uses.
DROP INDEX projects_active_idx;

ALTER TABLE projects DROP COLUMN archived_at;
