CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint      NOT NULL,
    email       text        NOT NULL,
    role        text        NOT NULL DEFAULT 'member',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_account_id_fkey FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_check CHECK (email LIKE '%_@_%' AND length(email) <= 255),
    CONSTRAINT users_role_check CHECK (role IN ('owner', 'admin', 'member'))
);

CREATE INDEX users_account_id_idx ON users (account_id);
