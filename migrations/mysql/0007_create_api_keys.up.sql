-- Only a SHA-256 of the secret is stored; the prefix is shown in the UI so
-- users can tell their keys apart.
CREATE TABLE api_keys (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    user_id     BIGINT       NOT NULL,
    name        VARCHAR(255) NOT NULL,
    prefix      CHAR(8)      NOT NULL,
    key_hash    BINARY(32)   NOT NULL,
    scopes      VARCHAR(255) NOT NULL DEFAULT 'read',
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    expires_at  DATETIME(6)  NULL,
    revoked_at  DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY api_keys_prefix_key (prefix),
    KEY api_keys_user_id_idx (user_id),
    CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
