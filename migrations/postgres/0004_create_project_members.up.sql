CREATE TABLE project_members (
    project_id  bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    role        text        NOT NULL DEFAULT 'viewer',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT project_members_pkey PRIMARY KEY (project_id, user_id),
    CONSTRAINT project_members_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT project_members_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT project_members_role_check CHECK (role IN ('viewer', 'editor', 'admin'))
);

CREATE INDEX project_members_user_id_idx ON project_members (user_id);
