DROP INDEX api_keys_last_used_at_idx;

ALTER TABLE api_keys DROP COLUMN last_used_at;
