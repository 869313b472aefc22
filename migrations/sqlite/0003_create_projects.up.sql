CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL
        CONSTRAINT projects_account_id_fkey REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- kept current by the projects_touch_updated_at trigger (version 12)
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT projects_name_check CHECK (length(name) BETWEEN 1 AND 200)
);

CREATE INDEX projects_account_id_idx ON projects (account_id);
CREATE UNIQUE INDEX projects_account_name_key ON projects (account_id, name);
