CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL
        CONSTRAINT users_account_id_fkey REFERENCES accounts (id) ON DELETE CASCADE,
    email       TEXT NOT NULL COLLATE NOCASE,
    role        TEXT NOT NULL DEFAULT 'member',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_check CHECK (email LIKE '%_@_%' AND length(email) <= 255),
    CONSTRAINT users_role_check CHECK (role IN ('owner', 'admin', 'member'))
);

CREATE INDEX users_account_id_idx ON users (account_id);
