/*
 * Accounts are the tenants of the service. Every other table hangs off an
 * account, directly or indirectly; deleting an account is a rare, audited
 * operation (see invoices, which refuse to be cascaded away).
 *
 * Written for MySQL 8.0.16+ and MariaDB 10.11+ (InnoDB, utf8mb4).
 */
CREATE TABLE accounts (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    slug        VARCHAR(63)  NOT NULL,
    name        VARCHAR(200) NOT NULL,
    plan        VARCHAR(20)  NOT NULL DEFAULT 'free',
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY accounts_slug_key (slug),
    CONSTRAINT accounts_name_check CHECK (CHAR_LENGTH(name) >= 1),
    CONSTRAINT accounts_plan_check CHECK (plan IN ('free', 'pro', 'enterprise'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Tenants of the service; every other row belongs to one.';
