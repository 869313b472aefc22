CREATE TABLE project_members (
    project_id  BIGINT      NOT NULL,
    user_id     BIGINT      NOT NULL,
    role        VARCHAR(20) NOT NULL DEFAULT 'viewer',
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (project_id, user_id),
    KEY project_members_user_id_idx (user_id),
    CONSTRAINT project_members_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT project_members_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT project_members_role_check CHECK (role IN ('viewer', 'editor', 'admin'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
