//! The history table's SQL, shared by every dialect: columns, reads and writes.

use crate::model::{Direction, HistoryRecord};

/// The columns read back, in [`SELECT_COLUMNS`] order.
pub(super) type RecordRow = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    String,
);

/// Columns of [`RecordRow`].
pub(super) const SELECT_COLUMNS: &str =
    "version, name, checksum, status, batch, statements_done, statements_total, error, direction";

pub(super) fn record_from_row(row: RecordRow) -> Result<HistoryRecord, sqlx::Error> {
    let (version, name, checksum, status, batch, done, total, error, direction) = row;
    let direction = match direction.as_str() {
        "up" => Direction::Up,
        "down" => Direction::Down,
        other => {
            return Err(sqlx::Error::Decode(
                format!("unknown history direction {other:?}").into(),
            ));
        }
    };
    Ok(HistoryRecord {
        version,
        name,
        checksum,
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        batch,
        statements_done: done,
        statements_total: total,
        error,
        direction,
    })
}

/// Every column written, in bind order.
pub(super) const WRITE_COLUMNS: [&str; 15] = [
    "version",
    "name",
    "checksum",
    "status",
    "batch",
    "rollout_id",
    "applied_by",
    "started_at",
    "finished_at",
    "duration_ms",
    "error",
    "statements_done",
    "statements_total",
    "rolled_back_at",
    "direction",
];

/// Columns of the log table's insert, in bind order.
pub(super) const LOG_COLUMNS: [&str; 9] = [
    "version",
    "name",
    "status",
    "batch",
    "rollout_id",
    "applied_by",
    "statements_done",
    "error",
    "direction",
];

/// Placeholder style of a dialect.
#[derive(Clone, Copy)]
pub(super) enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` (MySQL, SQLite).
    Question,
}

pub(super) fn placeholders(style: Placeholders, n: usize) -> String {
    (1..=n)
        .map(|i| match style {
            Placeholders::Numbered => format!("${i}"),
            Placeholders::Question => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT … (columns) VALUES (…) <conflict clause>` where the clause's `{c}` stands for
/// each non-key column, e.g. `ON CONFLICT (version) DO UPDATE SET` + `{c} = EXCLUDED.{c}`.
pub(super) fn upsert_sql(table: &str, style: Placeholders, conflict: &str, assign: &str) -> String {
    let sets: Vec<String> = WRITE_COLUMNS[1..]
        .iter()
        .map(|c| assign.replace("{c}", c))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) {conflict} {}",
        WRITE_COLUMNS.join(", "),
        placeholders(style, WRITE_COLUMNS.len()),
        sets.join(", ")
    )
}

pub(super) fn log_insert_sql(table: &str, style: Placeholders, now: &str) -> String {
    format!(
        "INSERT INTO {table} ({}, at) VALUES ({}, {now})",
        LOG_COLUMNS.join(", "),
        placeholders(style, LOG_COLUMNS.len())
    )
}

/// Binds a [`RecordWrite`](crate::model::RecordWrite) in [`WRITE_COLUMNS`] order.
macro_rules! bind_record {
    ($query:expr, $rec:expr) => {{
        let r = $rec;
        $query
            .bind(r.version)
            .bind(&r.name)
            .bind(&r.checksum)
            .bind(r.status.as_str())
            .bind(r.batch)
            .bind(&r.rollout_id)
            .bind(&r.applied_by)
            .bind(r.started_at)
            .bind(r.finished_at)
            .bind(r.duration_ms)
            .bind(&r.error)
            .bind(r.statements_done)
            .bind(r.statements_total)
            .bind(r.rolled_back_at)
            .bind(r.direction.as_str())
    }};
}

/// Binds a [`RecordWrite`](crate::model::RecordWrite) in [`LOG_COLUMNS`] order.
macro_rules! bind_log {
    ($query:expr, $rec:expr) => {{
        let r = $rec;
        $query
            .bind(r.version)
            .bind(&r.name)
            .bind(r.status.as_str())
            .bind(r.batch)
            .bind(&r.rollout_id)
            .bind(&r.applied_by)
            .bind(r.statements_done)
            .bind(&r.error)
            .bind(r.direction.as_str())
    }};
}

pub(super) use {bind_log, bind_record};

/// The SQL one tenant's sessions run, built once per tenant by its dialect.
pub(super) struct SessionSql {
    /// Run before `create`, e.g. `CREATE SCHEMA IF NOT EXISTS …`.
    pub(super) prelude: Vec<String>,
    /// The history table and the log table, `IF NOT EXISTS`.
    pub(super) create: [String; 2],
    /// Counts history tables with the name bound as its one parameter (0 or 1).
    pub(super) exists: String,
    /// The parameter of `exists`.
    pub(super) exists_arg: String,
    /// `SELECT` [`SELECT_COLUMNS`] ordered by version.
    pub(super) select: String,
    /// From [`upsert_sql`].
    pub(super) upsert: String,
    /// From [`log_insert_sql`].
    pub(super) log_insert: String,
}

/// Implements [`super::Session`] for `$session { conn: $conn, sql: Arc<SessionSql> }`; every
/// dialect's session is the same code over its own connection type.
macro_rules! sqlx_session {
    ($session:ident, $conn:ty) => {
        struct $session {
            conn: $conn,
            sql: std::sync::Arc<$crate::dialect::history::SessionSql>,
        }

        #[async_trait::async_trait]
        impl $crate::dialect::Session for $session {
            async fn ensure_history(&mut self) -> Result<(), DbError> {
                for ddl in self.sql.prelude.iter().chain(&self.sql.create) {
                    sqlx::Executor::execute(&mut self.conn, ddl.as_str())
                        .await
                        .map_err(DbError::query("creating the history table"))?;
                }
                Ok(())
            }

            async fn read_history(&mut self) -> Result<Vec<$crate::model::HistoryRecord>, DbError> {
                let exists: i64 = sqlx::query_scalar(&self.sql.exists)
                    .bind(&self.sql.exists_arg)
                    .fetch_one(&mut self.conn)
                    .await
                    .map_err(DbError::query("looking up the history table"))?;
                if exists == 0 {
                    return Ok(Vec::new());
                }
                let rows: Vec<$crate::dialect::history::RecordRow> =
                    sqlx::query_as(&self.sql.select)
                        .fetch_all(&mut self.conn)
                        .await
                        .map_err(DbError::query("reading the history table"))?;
                rows.into_iter()
                    .map($crate::dialect::history::record_from_row)
                    .collect::<Result<_, _>>()
                    .map_err(DbError::query("reading the history table"))
            }

            async fn write_record(
                &mut self,
                rec: &$crate::model::RecordWrite,
            ) -> Result<(), DbError> {
                $crate::dialect::history::bind_record!(sqlx::query(&self.sql.upsert), rec)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
                    .map_err(DbError::query("writing the history table"))
            }

            async fn append_log(
                &mut self,
                rec: &$crate::model::RecordWrite,
            ) -> Result<(), DbError> {
                $crate::dialect::history::bind_log!(sqlx::query(&self.sql.log_insert), rec)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
                    .map_err(DbError::query("writing the history log"))
            }

            async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
                sqlx::Executor::execute(&mut self.conn, sql)
                    .await
                    .map(|_| ())
            }

            async fn close(self: Box<Self>) {
                // Dropped (socket closed) if the server does not answer the goodbye.
                let close = sqlx::Connection::close(self.conn);
                let _ = tokio::time::timeout($crate::dialect::RELEASE_TIMEOUT, close).await;
            }
        }
    };
}

pub(super) use sqlx_session;
