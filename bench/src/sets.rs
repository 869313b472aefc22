//! The generated migration sets, written as sqlx one-file migrations (`<version>_<name>.sql`),
//! which avocet and sqlx-cli both read, and the psql scripts of the floor.

use std::{fmt::Write as _, path::Path, path::PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// One migration.
pub(crate) struct Migration {
    /// Version (1-based).
    pub(crate) version: i64,
    /// snake_case name.
    pub(crate) name: String,
    /// The up script.
    pub(crate) sql: String,
}

/// A set written to a directory.
pub(crate) struct MigrationSet {
    /// Set name (`light`, `heavy`, `large`).
    pub(crate) name: String,
    /// Directory with one `.sql` file per migration.
    pub(crate) dir: PathBuf,
    /// The migrations, in version order.
    pub(crate) migrations: Vec<Migration>,
}

/// SQL flavour of a generated set.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

fn numbered(items: Vec<(String, String)>) -> Vec<Migration> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, (name, sql))| Migration {
            version: i as i64 + 1,
            name,
            sql,
        })
        .collect()
}

/// 20 small DDL migrations: six tables, six added columns, six indexes, a join table and a
/// view.
pub(crate) fn light(f: Flavour) -> Vec<Migration> {
    let (pk, ts) = match f {
        Flavour::Postgres => (
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "TIMESTAMPTZ NOT NULL DEFAULT now()",
        ),
        Flavour::Sqlite => (
            "INTEGER PRIMARY KEY",
            "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP",
        ),
    };
    let tables = ["accounts", "users", "projects", "tasks", "comments", "tags"];
    let columns = [
        ("accounts", "plan", "TEXT NOT NULL DEFAULT 'free'"),
        ("users", "email", "TEXT"),
        ("projects", "account_id", "BIGINT"),
        ("tasks", "project_id", "BIGINT"),
        ("comments", "task_id", "BIGINT"),
        ("tags", "color", "TEXT"),
    ];
    let mut m = Vec::new();
    for t in tables {
        m.push((
            format!("create_{t}"),
            format!("CREATE TABLE {t} (\n    id {pk},\n    name TEXT NOT NULL,\n    created_at {ts}\n);\n"),
        ));
    }
    for (t, c, ty) in columns {
        m.push((
            format!("add_{t}_{c}"),
            format!("ALTER TABLE {t} ADD COLUMN {c} {ty};\n"),
        ));
    }
    for (t, c, _) in columns {
        m.push((
            format!("index_{t}_{c}"),
            format!("CREATE INDEX {t}_{c}_idx ON {t} ({c});\n"),
        ));
    }
    m.push((
        "create_project_tags".into(),
        "CREATE TABLE project_tags (\n    project_id BIGINT NOT NULL REFERENCES projects (id),\n    \
         tag_id BIGINT NOT NULL REFERENCES tags (id),\n    PRIMARY KEY (project_id, tag_id)\n);\n"
            .into(),
    ));
    m.push((
        "create_project_summary_view".into(),
        "CREATE VIEW project_summary AS\nSELECT p.id, p.name, count(t.id) AS tasks\n\
         FROM projects p LEFT JOIN tasks t ON t.project_id = p.id\nGROUP BY p.id, p.name;\n"
            .into(),
    ));
    numbered(m)
}

/// 20 PostgreSQL migrations of a realistic schema with seed data (about 20,000 rows per
/// tenant), a backfill, indexes, a plpgsql trigger, jsonb with a GIN index and a
/// materialized view.
pub(crate) fn heavy() -> Vec<Migration> {
    let id = "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY";
    let m: Vec<(&str, String)> = vec![
        ("create_accounts", format!("CREATE TABLE accounts (\n    {id},\n    slug TEXT NOT NULL UNIQUE,\n    plan TEXT NOT NULL CHECK (plan IN ('free', 'pro')),\n    created_at TIMESTAMPTZ NOT NULL DEFAULT now()\n);\n")),
        ("seed_accounts", "INSERT INTO accounts (slug, plan)\nSELECT 'acct-' || g, CASE WHEN g % 10 = 0 THEN 'pro' ELSE 'free' END\nFROM generate_series(1, 2000) AS g;\n".into()),
        ("create_users", format!("CREATE TABLE users (\n    {id},\n    account_id BIGINT NOT NULL REFERENCES accounts (id),\n    email TEXT NOT NULL UNIQUE,\n    created_at TIMESTAMPTZ NOT NULL DEFAULT now()\n);\n")),
        ("seed_users", "INSERT INTO users (account_id, email)\nSELECT (g % 2000) + 1, 'user' || g || '@example.com'\nFROM generate_series(1, 5000) AS g;\n".into()),
        ("index_users_account", "CREATE INDEX users_account_idx ON users (account_id);\n".into()),
        ("create_projects", format!("CREATE TABLE projects (\n    {id},\n    account_id BIGINT NOT NULL REFERENCES accounts (id),\n    name TEXT NOT NULL,\n    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n    UNIQUE (account_id, name)\n);\n")),
        ("seed_projects", "INSERT INTO projects (account_id, name)\nSELECT (g % 2000) + 1, 'project ' || g\nFROM generate_series(1, 3000) AS g;\n".into()),
        ("create_tasks", format!("CREATE TABLE tasks (\n    {id},\n    project_id BIGINT NOT NULL REFERENCES projects (id),\n    title TEXT NOT NULL,\n    status TEXT NOT NULL,\n    priority INT NOT NULL,\n    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n    done_at TIMESTAMPTZ\n);\n")),
        ("seed_tasks", "INSERT INTO tasks (project_id, title, status, priority, created_at)\nSELECT (g % 3000) + 1, 'task ' || g || ': ' || md5(g::text),\n       (ARRAY['open', 'doing', 'done'])[g % 3 + 1], g % 5,\n       now() - (g || ' minutes')::interval\nFROM generate_series(1, 5000) AS g;\n".into()),
        ("add_users_display_name", "ALTER TABLE users ADD COLUMN display_name TEXT;\n".into()),
        ("backfill_users_display_name", "UPDATE users SET display_name = split_part(email, '@', 1)\nWHERE display_name IS NULL;\n".into()),
        ("create_set_updated_at", "ALTER TABLE projects ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();\n\nCREATE FUNCTION set_updated_at() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND;\n$$;\n".into()),
        ("create_projects_touch_trigger", "CREATE TRIGGER projects_touch_updated_at\nBEFORE UPDATE ON projects\nFOR EACH ROW EXECUTE FUNCTION set_updated_at();\n".into()),
        ("index_tasks_project_status", "CREATE INDEX tasks_project_status_idx ON tasks (project_id, status);\n".into()),
        ("backfill_tasks_done_at", "UPDATE tasks SET done_at = created_at + interval '1 day'\nWHERE status = 'done';\n".into()),
        ("create_events", format!("CREATE TABLE events (\n    {id},\n    account_id BIGINT NOT NULL REFERENCES accounts (id),\n    kind TEXT NOT NULL,\n    payload JSONB NOT NULL,\n    at TIMESTAMPTZ NOT NULL DEFAULT now()\n);\n")),
        ("seed_events", "INSERT INTO events (account_id, kind, payload)\nSELECT (g % 2000) + 1, (ARRAY['login', 'invoice', 'export'])[g % 3 + 1],\n       jsonb_build_object('n', g, 'ip', '10.0.' || (g % 256) || '.' || (g % 200), 'tags', jsonb_build_array('a', g % 7))\nFROM generate_series(1, 5000) AS g;\n".into()),
        ("index_events_payload", "CREATE INDEX events_payload_idx ON events USING gin (payload);\n".into()),
        ("check_tasks_status", "ALTER TABLE tasks ADD CONSTRAINT tasks_status_check\nCHECK (status IN ('open', 'doing', 'done'));\n".into()),
        ("create_account_stats", "CREATE MATERIALIZED VIEW account_stats AS\nSELECT a.id AS account_id, count(DISTINCT u.id) AS users, count(DISTINCT p.id) AS projects\nFROM accounts a\nLEFT JOIN users u ON u.account_id = a.id\nLEFT JOIN projects p ON p.account_id = a.id\nGROUP BY a.id;\n\nCREATE UNIQUE INDEX account_stats_pk ON account_stats (account_id);\n".into()),
    ];
    numbered(m.into_iter().map(|(n, s)| (n.to_string(), s)).collect())
}

fn large_line(id: u64) -> String {
    // ~80 characters of payload, varying per row.
    let payload = format!(
        "{:064x}{:016}",
        u128::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        id
    );
    format!("INSERT INTO big(id, payload) VALUES ({id}, '{payload}');\n")
}

/// One migration of `bytes` bytes (give or take a line): `CREATE TABLE big`, then one INSERT
/// line per row; valid in all three dialects. Returns the set and its row count.
pub(crate) fn large(bytes: u64) -> (Vec<Migration>, u64) {
    let mut sql = String::with_capacity(bytes as usize + 200);
    sql.push_str("CREATE TABLE big (id BIGINT PRIMARY KEY, payload VARCHAR(200) NOT NULL);\n");
    let mut rows = 0;
    while (sql.len() as u64) < bytes || rows == 0 {
        rows += 1;
        sql.push_str(&large_line(rows));
    }
    (numbered(vec![("load_big".into(), sql)]), rows)
}

/// Writes a set to `dir` (created).
pub(crate) fn write(
    name: &str,
    migrations: Vec<Migration>,
    dir: &Path,
) -> anyhow::Result<MigrationSet> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for m in &migrations {
        let path = dir.join(format!("{:04}_{}.sql", m.version, m.name));
        std::fs::write(&path, &m.sql).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(MigrationSet {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        migrations,
    })
}

/// Hex SHA-256 of a script.
fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl MigrationSet {
    /// The floor's psql script: the history table, then every migration with its history row,
    /// each in its own transaction; with `grouped`, no BEGIN/COMMIT (run it with `psql -1`).
    pub(crate) fn floor_script(&self, grouped: bool) -> String {
        let mut s = String::from(
            "CREATE TABLE bench_history (\n    version BIGINT PRIMARY KEY,\n    name TEXT NOT NULL,\n    \
             checksum TEXT NOT NULL,\n    applied_at TIMESTAMPTZ NOT NULL\n);\n",
        );
        for m in &self.migrations {
            if !grouped {
                s.push_str("BEGIN;\n");
            }
            s.push_str(&m.sql);
            let _ = writeln!(
                s,
                "INSERT INTO bench_history (version, name, checksum, applied_at) VALUES ({}, '{}', '{}', now());",
                m.version,
                m.name,
                checksum(&m.sql)
            );
            if !grouped {
                s.push_str("COMMIT;\n");
            }
        }
        s
    }

    /// Total size of the scripts in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.migrations.iter().map(|m| m.sql.len()).sum()
    }
}
