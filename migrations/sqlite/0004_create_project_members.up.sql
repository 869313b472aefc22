CREATE TABLE project_members (
    project_id  INTEGER NOT NULL
        CONSTRAINT project_members_project_id_fkey REFERENCES projects (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL
        CONSTRAINT project_members_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL DEFAULT 'viewer',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT project_members_pkey PRIMARY KEY (project_id, user_id),
    CONSTRAINT project_members_role_check CHECK (role IN ('viewer', 'editor', 'admin'))
);

CREATE INDEX project_members_user_id_idx ON project_members (user_id);
