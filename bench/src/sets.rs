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

/// `count` PostgreSQL migrations of a growing product schema, about 3.5 KB each (285 make
/// about 1 MB): in turn two tables with twenty typed columns, their indexes and comments;
/// columns, an index and a check added to an earlier table; a plpgsql function with its
/// trigger; a view over two tables. Only parsed and planned by the publish scenario, never
/// run.
pub(crate) fn published(count: usize) -> Vec<Migration> {
    let columns = [
        ("account_id", "BIGINT NOT NULL"),
        ("owner_id", "BIGINT"),
        ("slug", "TEXT NOT NULL"),
        ("title", "TEXT NOT NULL DEFAULT ''"),
        ("description", "TEXT"),
        ("status", "TEXT NOT NULL DEFAULT 'draft'"),
        ("priority", "INTEGER NOT NULL DEFAULT 0"),
        ("amount_cents", "BIGINT NOT NULL DEFAULT 0"),
        ("currency", "CHAR(3) NOT NULL DEFAULT 'EUR'"),
        ("metadata", "JSONB NOT NULL DEFAULT '{}'::jsonb"),
        ("tags", "TEXT[] NOT NULL DEFAULT '{}'"),
        ("external_ref", "UUID"),
        ("is_archived", "BOOLEAN NOT NULL DEFAULT false"),
        ("starts_at", "TIMESTAMPTZ"),
        ("ends_at", "TIMESTAMPTZ"),
        ("created_at", "TIMESTAMPTZ NOT NULL DEFAULT now()"),
        ("updated_at", "TIMESTAMPTZ NOT NULL DEFAULT now()"),
        ("deleted_at", "TIMESTAMPTZ"),
        ("version", "INTEGER NOT NULL DEFAULT 1"),
        ("search", "TSVECTOR"),
    ];
    let table = |i: usize| format!("feature_{i:03}");
    let mut m = Vec::with_capacity(count);
    for i in 0..count {
        let t = table(i);
        let (name, sql) = match i % 5 {
            0 | 1 => {
                let mut sql = format!(
                    "-- Feature {i}: the {t} table, its lookups and its documentation.\n\
                     CREATE TABLE {t} (\n    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
                );
                for (c, ty) in columns {
                    let _ = write!(sql, ",\n    {c} {ty}");
                }
                let _ = write!(
                    sql,
                    ",\n    CONSTRAINT {t}_slug_key UNIQUE (account_id, slug),\n    \
                     CONSTRAINT {t}_period_check CHECK (ends_at IS NULL OR ends_at >= starts_at)\n);\n\n\
                     CREATE INDEX {t}_account_status_idx ON {t} (account_id, status) WHERE deleted_at IS NULL;\n\
                     CREATE INDEX {t}_metadata_idx ON {t} USING gin (metadata jsonb_path_ops);\n\
                     CREATE INDEX {t}_search_idx ON {t} USING gin (search);\n\n\
                     COMMENT ON TABLE {t} IS 'Feature {i}: one row per item an account keeps, soft-deleted with deleted_at.';\n"
                );
                for (c, _) in columns {
                    let _ = writeln!(
                        sql,
                        "COMMENT ON COLUMN {t}.{c} IS 'The item''s {}, as the application writes it.';",
                        c.replace('_', " ")
                    );
                }
                (format!("create_{t}"), sql)
            }
            2 => {
                let base = table(i - 2);
                let mut sql =
                    format!("-- Feature {i}: {base} learns about billing periods and reviewers.\n");
                for (c, ty) in [
                    ("reviewer_id", "BIGINT"),
                    ("reviewed_at", "TIMESTAMPTZ"),
                    ("billing_period", "TEXT NOT NULL DEFAULT 'monthly'"),
                    ("billing_anchor", "DATE"),
                    ("seats", "INTEGER NOT NULL DEFAULT 1"),
                    ("notes", "TEXT"),
                ] {
                    let _ = writeln!(sql, "ALTER TABLE {base} ADD COLUMN {c} {ty};");
                }
                let _ = write!(
                    sql,
                    "ALTER TABLE {base} ADD CONSTRAINT {base}_seats_check CHECK (seats > 0);\n\
                     ALTER TABLE {base} ADD CONSTRAINT {base}_billing_period_check\n    \
                     CHECK (billing_period IN ('monthly', 'quarterly', 'yearly'));\n\
                     CREATE INDEX {base}_reviewer_idx ON {base} (reviewer_id) WHERE reviewer_id IS NOT NULL;\n\
                     CREATE INDEX {base}_billing_idx ON {base} (billing_period, billing_anchor);\n\
                     COMMENT ON COLUMN {base}.billing_period IS 'How often the item is billed: monthly, quarterly or yearly.';\n\
                     COMMENT ON COLUMN {base}.seats IS 'Seats paid for; at least one.';\n"
                );
                (format!("extend_{base}"), sql)
            }
            3 => {
                let base = table(i - 3);
                let sql = format!(
                    "-- Feature {i}: {base} keeps updated_at, version and its search vector.\n\
                     CREATE FUNCTION {base}_touch() RETURNS trigger\nLANGUAGE plpgsql AS $$\n\
                     BEGIN\n    NEW.updated_at := now();\n    NEW.version := OLD.version + 1;\n    \
                     NEW.search := setweight(to_tsvector('simple', coalesce(NEW.title, '')), 'A')\n        \
                     || setweight(to_tsvector('simple', coalesce(NEW.description, '')), 'B');\n    \
                     IF NEW.status = 'archived' AND OLD.status <> 'archived' THEN\n        \
                     NEW.is_archived := true;\n    END IF;\n    RETURN NEW;\nEND;\n$$;\n\n\
                     CREATE TRIGGER {base}_touch_trigger\nBEFORE UPDATE ON {base}\n\
                     FOR EACH ROW EXECUTE FUNCTION {base}_touch();\n\n\
                     COMMENT ON FUNCTION {base}_touch() IS 'Keeps updated_at, version and search current on every update of {base}.';\n"
                );
                (format!("touch_{base}"), sql)
            }
            _ => {
                let (a, b) = (table(i - 4), table(i - 3));
                let sql = format!(
                    "-- Feature {i}: what each account has in {a} and {b}.\n\
                     CREATE VIEW {t}_summary AS\nSELECT a.account_id,\n       \
                     count(DISTINCT a.id) FILTER (WHERE a.deleted_at IS NULL) AS live_{a},\n       \
                     count(DISTINCT b.id) FILTER (WHERE b.deleted_at IS NULL) AS live_{b},\n       \
                     sum(a.amount_cents) AS amount_cents_{a},\n       \
                     max(greatest(a.updated_at, b.updated_at)) AS last_change\n\
                     FROM {a} a\nLEFT JOIN {b} b ON b.account_id = a.account_id AND b.owner_id = a.owner_id\n\
                     WHERE NOT a.is_archived\nGROUP BY a.account_id;\n\n\
                     COMMENT ON VIEW {t}_summary IS 'Per account: live items of {a} and {b}, amounts and the last change.';\n"
                );
                (format!("summarise_{a}_{b}"), sql)
            }
        };
        let object = match i % 5 {
            0 | 1 => t.clone(),
            2 | 3 => table(i - (i % 5)),
            _ => format!("{t}_summary"),
        };
        let mut tail = format!("\nGRANT SELECT ON {object} TO app_ro, reporting;\n");
        if i % 5 < 2 {
            let _ = write!(
                tail,
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO app_rw;\n\
                 ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;\n\
                 CREATE POLICY {t}_account_isolation ON {t}\n    \
                 USING (account_id = current_setting('app.account_id')::bigint)\n    \
                 WITH CHECK (account_id = current_setting('app.account_id')::bigint);\n"
            );
        }
        m.push((name.clone(), format!("{}{sql}{tail}", header(i, &name))));
    }
    numbered(m)
}

/// The comment block a team writes above a migration: its ticket, why, how it is rolled
/// out and undone.
fn header(i: usize, name: &str) -> String {
    format!(
        "-- Migration {name}\n\
         -- Ticket: PLAT-{ticket}. Reviewed by the schema owners before merge.\n\
         -- Why: the product needs this change for feature {i}; the application reads the new\n\
         --   objects only behind its feature flag, so deploying the schema first is safe.\n\
         -- Rollout: applied by avocet in waves (canary first); every statement here takes\n\
         --   its locks for a short time only, and nothing rewrites a large table.\n\
         -- Undo: a later migration removes what this one adds; never edit this file once\n\
         --   applied anywhere (its checksum is recorded in every tenant's history).\n\
         -- Data: no tenant data is read or written here; backfills run as jobs.\n\
         -- Owner: team-{team}@example.com; on call: #schema-changes.\n\
         -- Checklist:\n\
         --   [x] names follow the style guide (snake_case, <table>_<columns>_idx, _check, _key)\n\
         --   [x] every new column is nullable or has a default: no table rewrite, no long lock\n\
         --   [x] every foreign key column has an index; every text column has a length policy\n\
         --   [x] row-level security covers every tenant table (account_id = app.account_id)\n\
         --   [x] grants: app_rw reads and writes, app_ro and reporting read\n\
         --   [x] tested against a copy of the largest tenant: under 50 ms of locks in total\n\n",
        ticket = 4000 + i * 7,
        team = ["billing", "catalog", "growth", "identity", "search"][i % 5],
    )
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
