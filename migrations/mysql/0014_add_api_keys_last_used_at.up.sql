ALTER TABLE api_keys ADD COLUMN last_used_at DATETIME(6) NULL;

CREATE INDEX api_keys_last_used_at_idx ON api_keys (last_used_at);
