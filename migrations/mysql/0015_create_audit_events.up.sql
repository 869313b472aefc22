CREATE TABLE audit_events (
    id            BIGINT      NOT NULL AUTO_INCREMENT,
    account_id    BIGINT      NOT NULL,
    actor_user_id BIGINT      NULL,
    action        VARCHAR(64) NOT NULL,
    target_type   VARCHAR(64) NULL,
    target_id     BIGINT      NULL,
    payload       JSON        NOT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY audit_events_account_created_idx (account_id, created_at),
    KEY audit_events_actor_user_id_idx (actor_user_id),
    CONSTRAINT audit_events_account_id_fkey FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT audit_events_actor_user_id_fkey FOREIGN KEY (actor_user_id)
        REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
