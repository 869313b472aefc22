-- The index must go first: SQLite refuses to drop an indexed column.
DROP INDEX api_keys_last_used_at_idx;

ALTER TABLE api_keys DROP COLUMN last_used_at;
