//! Where one tenant lives, as configuration gives it.

use std::{fmt, time::Duration};

/// Where one tenant lives and how to talk to it.
#[derive(Clone)]
pub struct Target {
    /// Connection URL. Secret: never logged, never in errors or responses.
    pub dsn: String,
    /// PostgreSQL schema for schema-per-tenant fleets; `search_path` is set to it on every
    /// connection the engine opens, and the history table lives in it.
    pub schema: Option<String>,
    /// Validated history table name; the log table is `<name>_log`.
    pub history_table: String,
    /// Statements run on every connection the engine opens, before anything else
    /// (e.g. `PRAGMA foreign_keys = OFF`, `SET FOREIGN_KEY_CHECKS = 0`).
    pub session_init: Vec<String>,
    /// Longest wait for a connection to open.
    pub connect_timeout: Duration,
    /// The history table's `version` column holds text, not integers: true for a set in
    /// Flyway's layout, whose versions may be dotted (`1.2.3`).
    pub text_versions: bool,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("dsn", &"<redacted>")
            .field("schema", &self.schema)
            .field("history_table", &self.history_table)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// `db.namespace` (OpenTelemetry database semantic conventions): the database's name
    /// from the DSN's path (the SQLite file's name), followed by `|schema` for a schema
    /// tenant. Never the DSN's user, password or host. `None` when the DSN has no path.
    pub fn namespace(&self) -> Option<String> {
        let url = url::Url::parse(&self.dsn).ok()?;
        let name = url.path().rsplit('/').next().filter(|n| !n.is_empty())?;
        Some(match &self.schema {
            Some(schema) => format!("{name}|{schema}"),
            None => name.to_owned(),
        })
    }
}
