-- Only a SHA-256 of the secret is stored; the prefix is shown in the UI so
-- users can tell their keys apart.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL
        CONSTRAINT api_keys_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    key_hash    BLOB NOT NULL,
    scopes      TEXT NOT NULL DEFAULT 'read',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at  TEXT,
    revoked_at  TEXT,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT api_keys_prefix_check CHECK (length(prefix) = 8 AND NOT (prefix GLOB '*[^a-z0-9]*')),
    CONSTRAINT api_keys_key_hash_check CHECK (length(key_hash) = 32)
);

CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
