CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint      NOT NULL,
    actor_user_id bigint,
    action        text        NOT NULL,
    target_type   text,
    target_id     bigint,
    payload       jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_events_account_id_fkey FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT audit_events_actor_user_id_fkey FOREIGN KEY (actor_user_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT audit_events_action_check CHECK (action ~ '^[a-z_]+\.[a-z_]+$')
);

CREATE INDEX audit_events_account_created_idx ON audit_events (account_id, created_at);
CREATE INDEX audit_events_actor_user_id_idx ON audit_events (actor_user_id);
