CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL
        CONSTRAINT audit_events_account_id_fkey REFERENCES accounts (id) ON DELETE CASCADE,
    actor_user_id INTEGER
        CONSTRAINT audit_events_actor_user_id_fkey REFERENCES users (id) ON DELETE SET NULL,
    action        TEXT NOT NULL,
    target_type   TEXT,
    target_id     INTEGER,
    payload       TEXT NOT NULL DEFAULT '{}', -- JSON document
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT audit_events_action_check CHECK (instr(action, '.') > 1)
);

CREATE INDEX audit_events_account_created_idx ON audit_events (account_id, created_at);
CREATE INDEX audit_events_actor_user_id_idx ON audit_events (actor_user_id);
