//! History rows written as SQL literals, so that a migration's statements, its history row
//! and its log row travel to the server in one request and commit together. Every value is
//! rendered by the dialect's own literal syntax, never pasted raw:
//!
//! - PostgreSQL: escape strings `E'…'`, where `\` and `'` are the only characters to escape
//!   whatever `standard_conforming_strings` says (PostgreSQL docs, 4.1.2.2 "String
//!   Constants With C-Style Escapes");
//! - SQLite: `'…'` with `'` doubled (SQLite docs, "Literal Values");
//! - MySQL: hexadecimal literals read as utf8mb4, which no `sql_mode` reinterprets (MySQL 8.0
//!   Reference Manual, 11.1.4 "Hexadecimal Literals").
//!
//! Times are the server's: the row's `finished_at` and `duration_ms` are computed when the
//! statement runs, after the script it follows.

use std::fmt::Write;

use super::history::{LOG_COLUMNS, WRITE_COLUMNS};
use crate::model::{RecordStatus, RecordWrite};

/// A dialect's literal syntax.
#[derive(Clone, Copy)]
pub(super) enum Style {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    /// SQLite.
    Sqlite,
}

impl Style {
    fn string(self, s: &str) -> String {
        match self {
            Self::Postgres => format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
            Self::Sqlite => format!("'{}'", s.replace('\'', "''")),
            Self::Mysql => format!("CONVERT(X'{}' USING utf8mb4)", hex::encode(s)),
        }
    }

    /// An integer version as a number; a dotted one as a string, which a text column takes
    /// and an integer column refuses (it is never rounded to a number).
    fn version(self, v: crate::model::Version) -> String {
        v.as_i64()
            .map_or_else(|| self.string(&v.to_string()), |n| n.to_string())
    }

    fn opt_string(self, s: Option<&str>) -> String {
        s.map_or_else(|| "NULL".to_owned(), |s| self.string(s))
    }

    /// The time the statement runs.
    fn now(self) -> &'static str {
        match self {
            Self::Postgres => "clock_timestamp()",
            Self::Mysql => "CURRENT_TIMESTAMP(6)",
            Self::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// When the step started: the transaction's start on PostgreSQL, the engine's clock
    /// elsewhere (SQLite runs on the engine's machine; MySQL never batches a transaction).
    fn started(self, rec: &RecordWrite) -> String {
        match self {
            Self::Postgres => "now()".into(),
            Self::Mysql | Self::Sqlite => self.string(&rec.started_at.to_rfc3339()),
        }
    }

    /// Milliseconds from `started` to now.
    fn duration_ms(self, started: &str) -> String {
        match self {
            Self::Postgres => {
                format!("(extract(epoch FROM clock_timestamp() - {started}) * 1000)::bigint")
            }
            Self::Mysql => {
                format!("TIMESTAMPDIFF(MICROSECOND, {started}, CURRENT_TIMESTAMP(6)) DIV 1000")
            }
            Self::Sqlite => format!(
                "CAST(round((julianday('now') - julianday({started})) * 86400000) AS INTEGER)"
            ),
        }
    }

    fn upsert_clause(self) -> (&'static str, &'static str) {
        match self {
            Self::Postgres => ("ON CONFLICT (version) DO UPDATE SET", "{c} = EXCLUDED.{c}"),
            Self::Sqlite => ("ON CONFLICT (version) DO UPDATE SET", "{c} = excluded.{c}"),
            Self::Mysql => ("ON DUPLICATE KEY UPDATE", "{c} = VALUES({c})"),
        }
    }
}

/// The upsert of `rec` into `table` and its insert into `log`, `;`-separated.
pub(super) fn record_sql(style: Style, table: &str, log: &str, rec: &RecordWrite) -> String {
    let started = style.started(rec);
    let finished = rec.finished_at.is_some();
    let now = style.now();
    let values = [
        style.version(rec.version),
        style.string(&rec.name),
        style.string(&rec.checksum),
        style.string(rec.status.as_str()),
        rec.batch.to_string(),
        style.string(&rec.rollout_id),
        style.string(&rec.applied_by),
        started.clone(),
        if finished { now.into() } else { "NULL".into() },
        if finished {
            style.duration_ms(&started)
        } else {
            "NULL".into()
        },
        style.opt_string(rec.error.as_deref()),
        rec.statements_done.to_string(),
        rec.statements_total.to_string(),
        if rec.status == RecordStatus::RolledBack {
            now.into()
        } else {
            "NULL".into()
        },
        style.string(rec.direction.as_str()),
        style.opt_string(rec.down_checksum.as_deref()),
    ];
    debug_assert_eq!(values.len(), WRITE_COLUMNS.len());
    let (conflict, assign) = style.upsert_clause();
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES ({}) {conflict} ",
        WRITE_COLUMNS.join(", "),
        values.join(", ")
    );
    let sets: Vec<String> = WRITE_COLUMNS[1..]
        .iter()
        .map(|c| assign.replace("{c}", c))
        .collect();
    sql.push_str(&sets.join(", "));
    let log_values = [
        style.version(rec.version),
        style.string(&rec.name),
        style.string(rec.status.as_str()),
        rec.batch.to_string(),
        style.string(&rec.rollout_id),
        style.string(&rec.applied_by),
        rec.statements_done.to_string(),
        style.opt_string(rec.error.as_deref()),
        style.string(rec.direction.as_str()),
    ];
    debug_assert_eq!(log_values.len(), LOG_COLUMNS.len());
    let _ = write!(
        sql,
        ";\nINSERT INTO {log} ({}, at) VALUES ({}, {now})",
        LOG_COLUMNS.join(", "),
        log_values.join(", ")
    );
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_each_dialect() {
        let nasty = r"it's \'; DROP TABLE x; --";
        assert_eq!(
            Style::Postgres.string(nasty),
            r"E'it''s \\''; DROP TABLE x; --'"
        );
        assert_eq!(
            Style::Sqlite.string(nasty),
            r"'it''s \''; DROP TABLE x; --'"
        );
        let mysql = Style::Mysql.string("a'b");
        assert_eq!(mysql, "CONVERT(X'612762' USING utf8mb4)");
        assert_eq!(Style::Postgres.opt_string(None), "NULL");
    }
}
