//! The history table's SQL, shared by every dialect: columns, reads and writes.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError, Weak},
};

use crate::model::{Direction, HistoryRecord};

/// The columns read back, in [`SELECT_COLUMNS`] order; the version as text (see
/// [`select_sql`]).
pub(super) type RecordRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    String,
    Option<String>,
);

/// Columns of [`RecordRow`] after the version.
pub(super) const SELECT_COLUMNS: &str = "name, checksum, status, batch, \
     statements_done, statements_total, error, direction, down_checksum";

/// [`SELECT_COLUMNS`] of a history table made before the `down_checksum` column: read as
/// `NULL` (nothing is known of the `down` script that was in the set then).
pub(super) const LEGACY_SELECT_COLUMNS: &str = "name, checksum, status, batch, \
     statements_done, statements_total, error, direction, NULL AS down_checksum";

/// What a history table's `version` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum VersionColumn {
    /// Integers (`BIGINT`; SQLite's `INTEGER`): every format but Flyway.
    Integer,
    /// Text (`TEXT`; MySQL's `VARCHAR(128) COLLATE utf8mb4_bin`): Flyway's dotted versions,
    /// as Flyway's own `flyway_schema_history.version` holds them, and repeatables' keys,
    /// compared byte for byte as PostgreSQL and SQLite compare `TEXT` (a MySQL default
    /// collation would key `R__Views` and `R__views`, or `R__café` and `R__cafe`, as one row).
    Text,
}

/// The `version` column `target`'s history table is made with.
pub(super) fn version_column(target: &super::Target) -> VersionColumn {
    match target.text_versions {
        true => VersionColumn::Text,
        false => VersionColumn::Integer,
    }
}

impl VersionColumn {
    /// The column's type in `dialect`'s DDL.
    pub(super) fn sql_type(self, dialect: super::DialectKind) -> &'static str {
        use super::DialectKind::{Mysql, Postgres, Sqlite};
        match (self, dialect) {
            (Self::Integer, Postgres | Mysql) => "BIGINT",
            (Self::Integer, Sqlite) => "INTEGER",
            (Self::Text, Postgres | Sqlite) => "TEXT",
            (Self::Text, Mysql) => "VARCHAR(128) COLLATE utf8mb4_bin",
        }
    }
}

pub(super) fn record_from_row(row: RecordRow) -> Result<HistoryRecord, sqlx::Error> {
    let (version, name, checksum, status, batch, done, total, error, direction, down_checksum) =
        row;
    let version = version
        .parse()
        .map_err(|e: crate::model::VersionError| sqlx::Error::Decode(e.to_string().into()))?;
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
        down_checksum,
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
pub(super) const WRITE_COLUMNS: [&str; 16] = [
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
    "down_checksum",
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

/// Binds a [`RecordWrite`](crate::model::RecordWrite) in [`WRITE_COLUMNS`] order, its
/// version as `$column` ([`VersionColumn`]) holds it: one parameter type per statement, so
/// a prepared statement is never sent a value of another type.
macro_rules! bind_record {
    ($query:expr, $rec:expr, $column:expr) => {{
        let r = $rec;
        $crate::dialect::history::bind_version!($query, r.version, $column)
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
            .bind(&r.down_checksum)
    }};
}

/// Binds a [`RecordWrite`](crate::model::RecordWrite) in [`LOG_COLUMNS`] order, like
/// [`bind_record`].
macro_rules! bind_log {
    ($query:expr, $rec:expr, $column:expr) => {{
        let r = $rec;
        $crate::dialect::history::bind_version!($query, r.version, $column)
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

/// Binds `$version` as text to a text column, as an integer to an integer column (the
/// caller has checked with [`SessionSql::writable`] that it is one).
macro_rules! bind_version {
    ($query:expr, $version:expr, $column:expr) => {
        match $column {
            $crate::dialect::history::VersionColumn::Text => $query.bind($version.to_string()),
            $crate::dialect::history::VersionColumn::Integer => {
                $query.bind($version.as_i64().unwrap_or_default())
            }
        }
    };
}

pub(super) use {bind_log, bind_record, bind_version};

/// The SQL one tenant's sessions run, built once per tenant by its dialect.
pub(super) struct SessionSql {
    /// Run before `create`, e.g. `CREATE SCHEMA IF NOT EXISTS …`.
    pub(super) prelude: Vec<String>,
    /// The history table and the log table, `IF NOT EXISTS`.
    pub(super) create: [String; 2],
    /// What the `version` column holds.
    pub(super) version_column: VersionColumn,
    /// `SELECT` the version as text and [`SELECT_COLUMNS`].
    pub(super) select: String,
    /// `SELECT` [`LEGACY_SELECT_COLUMNS`]: the read of a table made before `down_checksum`.
    pub(super) select_legacy: String,
    /// `ALTER TABLE … ADD COLUMN down_checksum …`: brings such a table to today's layout.
    pub(super) upgrade: String,
    /// From [`upsert_sql`].
    pub(super) upsert: String,
    /// From [`log_insert_sql`].
    pub(super) log_insert: String,
    /// The qualified history table and log table names, for literal writes.
    pub(super) tables: [String; 2],
    /// The SQLSTATE (or SQLite result code) of "no such table".
    pub(super) missing_table_code: &'static str,
    /// The SQLSTATE (or SQLite result code) of "no such column".
    pub(super) missing_column_code: &'static str,
}

/// `SELECT CAST(version AS text_type), columns FROM table`: the version read as text
/// whatever the column holds (`text_type`: `TEXT`, MySQL's `CHAR`), parsed and sorted by
/// the reader, since text does not sort as versions do.
pub(super) fn select_sql(table: &str, text_type: &str, columns: &str) -> String {
    format!("SELECT CAST(version AS {text_type}), {columns} FROM {table}")
}

/// True when `e` is a database error with `code`; SQLite's generic code `1` must also
/// carry `sqlite_text` in its message.
fn is_db_error(e: &sqlx::Error, code: &str, sqlite_text: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some(code)
                && (code != "1" || db.message().contains(sqlite_text))
        }
        _ => false,
    }
}

/// The history SQL for `key` (dialect, schema or database, history table), built by
/// `build` once and shared by every tenant whose key is the same while any of them holds it:
/// a fleet of 100,000 tenants in the `public` schema keeps one copy, not 100,000.
pub(super) fn shared_sql(
    key: (super::DialectKind, &str, &str, VersionColumn),
    build: impl FnOnce() -> SessionSql,
) -> Arc<SessionSql> {
    type Key = (super::DialectKind, String, String, VersionColumn);
    static SHARED: Mutex<BTreeMap<Key, Weak<SessionSql>>> = Mutex::new(BTreeMap::new());
    let (kind, schema, table, column) = key;
    let key = (kind, schema.to_owned(), table.to_owned(), column);
    // A poisoned map only means another thread panicked mid-insert; its entries are intact.
    let mut map = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sql) = map.get(&key).and_then(Weak::upgrade) {
        return sql;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let sql = Arc::new(build());
    map.insert(key, Arc::downgrade(&sql));
    sql
}

impl SessionSql {
    /// `Ok` when `version` fits the `version` column: a dotted version or a repeatable's
    /// key needs a text column.
    ///
    /// # Errors
    /// [`super::DbError::Query`] naming the version and the column's type.
    pub(super) fn writable(&self, version: crate::model::Version) -> Result<(), super::DbError> {
        if self.version_column == VersionColumn::Integer && version.as_i64().is_none() {
            let message = format!(
                "version {version} is not an integer, and this history table's version column \
                 holds integers (a set read as Flyway's layout makes a text column)"
            );
            return Err(super::DbError::query("writing the history table")(
                sqlx::Error::Encode(message.into()),
            ));
        }
        Ok(())
    }

    /// True when `e` says the history table does not exist.
    pub(super) fn is_missing_table(&self, e: &sqlx::Error) -> bool {
        is_db_error(e, self.missing_table_code, "no such table")
    }

    /// True when `e` says a column read does not exist: a history table made before the
    /// `down_checksum` column.
    pub(super) fn is_missing_column(&self, e: &sqlx::Error) -> bool {
        is_db_error(e, self.missing_column_code, "no such column")
    }
}

/// Implements the dialect-independent part of [`super::Session`] for
/// `$session { conn: $conn, sql: Arc<SessionSql>, .. }`; the dialect's own
/// `impl $session` supplies `lock_impl`, `unlock_impl` and `lock_check_impl`, and the session its `reset`.
macro_rules! sqlx_session {
    (
        $session:ident,
        $conn:ty,
        persistent: $persistent:expr,
        batch_limit: $batch_limit:expr,
        literals: $style:expr
    ) => {
        impl $session {
            /// Every history row read with `select`, ascending by version.
            async fn select_history(
                &mut self,
                select: &str,
            ) -> Result<Vec<$crate::model::HistoryRecord>, sqlx::Error> {
                let rows = sqlx::Executor::fetch_all(&mut self.conn, select).await?;
                let mut records = rows
                    .iter()
                    .map(|row| {
                        sqlx::FromRow::from_row(row)
                            .and_then($crate::dialect::history::record_from_row)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                records.sort_unstable_by_key(|r| r.version);
                Ok(records)
            }
        }

        #[async_trait::async_trait]
        impl $crate::dialect::Session for $session {
            async fn read_history(
                &mut self,
            ) -> Result<Option<Vec<$crate::model::HistoryRecord>>, DbError> {
                // One round trip over the simple protocol; a missing table is the answer
                // "nothing applied", not an error. A table from before the `down_checksum`
                // column is read as it is (a second round trip) and left unchanged.
                let sql = std::sync::Arc::clone(&self.sql);
                let read = DbError::query("reading the history table");
                match self.select_history(&sql.select).await {
                    Ok(records) => Ok(Some(records)),
                    Err(e) if sql.is_missing_table(&e) => Ok(None),
                    Err(e) if sql.is_missing_column(&e) => self
                        .select_history(&sql.select_legacy)
                        .await
                        .map(Some)
                        .map_err(read),
                    Err(e) => Err(read(e)),
                }
            }

            async fn prepare_history(
                &mut self,
            ) -> Result<Vec<$crate::model::HistoryRecord>, DbError> {
                let sql = std::sync::Arc::clone(&self.sql);
                let read = DbError::query("reading the history table");
                match self.select_history(&sql.select).await {
                    Ok(records) => Ok(records),
                    Err(e) if sql.is_missing_table(&e) => {
                        $crate::dialect::Session::create_history(self).await?;
                        Ok(Vec::new())
                    }
                    Err(e) if sql.is_missing_column(&e) => {
                        sqlx::Executor::execute(&mut self.conn, sql.upgrade.as_str())
                            .await
                            .map_err(DbError::query("adding down_checksum to the history table"))?;
                        self.select_history(&sql.select).await.map_err(read)
                    }
                    Err(e) => Err(read(e)),
                }
            }

            async fn create_history(&mut self) -> Result<(), DbError> {
                // One request: the schema (if any) and both tables.
                let ddl: Vec<&str> = self
                    .sql
                    .prelude
                    .iter()
                    .chain(&self.sql.create)
                    .map(String::as_str)
                    .collect();
                let ddl = ddl.join(";\n");
                sqlx::Executor::execute(&mut self.conn, ddl.as_str())
                    .await
                    .map(|_| ())
                    .map_err(DbError::query("creating the history table"))
            }

            async fn read_foreign(
                &mut self,
                tool: $crate::model::SetFormat,
            ) -> Result<Option<Vec<$crate::model::ForeignRow>>, DbError> {
                type Row = (
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                );
                let Some(select) = $crate::dialect::foreign::select_sql($style, tool) else {
                    return Ok(Some(Vec::new()));
                };
                let read = DbError::query("reading the other tool's history table");
                let rows = match sqlx::Executor::fetch_all(&mut self.conn, select.as_str()).await {
                    Ok(rows) => rows,
                    Err(e) if self.sql.is_missing_table(&e) => return Ok(None),
                    Err(e) => return Err(read(e)),
                };
                rows.iter()
                    .map(|row| {
                        let (version, name, ok, checksum, kind): Row =
                            sqlx::FromRow::from_row(row)?;
                        Ok($crate::model::ForeignRow {
                            version,
                            name,
                            ok: ok.as_deref() == Some("1"),
                            checksum,
                            kind,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map(Some)
                    .map_err(read)
            }

            async fn write_record(
                &mut self,
                rec: &$crate::model::RecordWrite,
            ) -> Result<(), DbError> {
                self.sql.writable(rec.version)?;
                let query = sqlx::query(&self.sql.upsert).persistent($persistent);
                $crate::dialect::history::bind_record!(query, rec, self.sql.version_column)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
                    .map_err(DbError::query("writing the history table"))
            }

            async fn append_log(
                &mut self,
                rec: &$crate::model::RecordWrite,
            ) -> Result<(), DbError> {
                self.sql.writable(rec.version)?;
                let query = sqlx::query(&self.sql.log_insert).persistent($persistent);
                $crate::dialect::history::bind_log!(query, rec, self.sql.version_column)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
                    .map_err(DbError::query("writing the history log"))
            }

            fn record_sql(&self, rec: &$crate::model::RecordWrite) -> String {
                let [table, log] = &self.sql.tables;
                $crate::dialect::literal::record_sql($style, table, log, rec)
            }

            async fn execute_batch(
                &mut self,
                sql: &str,
            ) -> Result<u64, $crate::dialect::BatchError> {
                use futures::StreamExt;
                let mut done = 0;
                // A query without arguments goes over the simple protocol.
                let mut results = sqlx::Executor::fetch_many(&mut self.conn, sql);
                while let Some(item) = results.next().await {
                    match item {
                        Ok(sqlx::Either::Left(_)) => done += 1,
                        Ok(sqlx::Either::Right(_)) => {}
                        Err(source) => return Err($crate::dialect::BatchError { done, source }),
                    }
                }
                Ok(done)
            }

            async fn lock(
                &mut self,
                timeout: std::time::Duration,
            ) -> Result<std::time::Duration, DbError> {
                self.lock_impl(timeout).await
            }

            async fn unlock(&mut self) -> Result<(), DbError> {
                self.unlock_impl().await
            }

            fn lock_check(&self) -> Option<$crate::dialect::LockCheck> {
                self.lock_check_impl()
            }

            fn batch_limit(&self) -> usize {
                $batch_limit
            }

            fn reset_sql(&self) -> Option<&[String]> {
                self.reset.as_deref()
            }

            async fn ping(&mut self) -> Result<(), DbError> {
                sqlx::Connection::ping(&mut self.conn)
                    .await
                    .map_err(|source| DbError::Connect { source })
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
