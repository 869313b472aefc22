-- Only a SHA-256 of the secret is stored; the prefix is shown in the UI so
-- users can tell their keys apart.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL,
    name        text        NOT NULL,
    prefix      text        NOT NULL,
    key_hash    bytea       NOT NULL,
    scopes      text        NOT NULL DEFAULT 'read',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT api_keys_prefix_check CHECK (prefix ~ '^[a-z0-9]{8}$'),
    CONSTRAINT api_keys_key_hash_check CHECK (octet_length(key_hash) = 32)
);

CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
