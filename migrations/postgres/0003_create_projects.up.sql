CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint      NOT NULL,
    name        text        NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- kept current by the projects_touch_updated_at trigger (version 12)
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_account_id_fkey FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT projects_name_check CHECK (length(name) BETWEEN 1 AND 200)
);

CREATE INDEX projects_account_id_idx ON projects (account_id);
CREATE UNIQUE INDEX projects_account_name_key ON projects (account_id, name);
