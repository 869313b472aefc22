//! Databases behind one small trait: what the engine needs to lock a tenant, read and write
//! its history table, and run scripts. One file per database.
//!
//! The engine's rules (transactions, recording, lock lifetimes) live in `rollout`; a dialect
//! only supplies primitives, so each rule is written once.

mod history;
mod mysql;
mod postgres;
mod sqlite;

use std::{fmt, time::Duration};

use async_trait::async_trait;

use crate::model::{DialectKind, HistoryRecord, RecordWrite};

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

/// A database operation that failed. Messages never contain the DSN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database refused the connection, or the driver could not reach it.
    #[error("cannot connect: {source}")]
    Connect {
        /// The driver's error.
        source: sqlx::Error,
    },
    /// No connection opened within the target's connect timeout.
    #[error("no connection within {timeout_ms} ms")]
    ConnectTimeout {
        /// The timeout, ms.
        timeout_ms: u64,
    },
    /// A statement the engine issued failed.
    #[error("{context}: {source}")]
    Query {
        /// What the engine was doing, e.g. `reading the history table`.
        context: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A file the engine needs beside a SQLite database (its directory, its lock file).
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing, e.g. `opening the tenant's lock file`.
        context: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The per-tenant lock was still held by another session when the timeout ran out.
    #[error("lock {lock} not acquired within {waited_ms} ms: another session holds it")]
    LockTimeout {
        /// The lock's key or name, e.g. `pg_advisory_lock(7203…)`.
        lock: String,
        /// How long the engine polled, in milliseconds.
        waited_ms: u64,
    },
    /// The lock's release did not finish in time; its connection was dropped, which ends
    /// the session and with it the lock.
    #[error("lock release did not finish within {timeout_ms} ms; its connection was dropped")]
    ReleaseTimeout {
        /// The timeout, ms.
        timeout_ms: u64,
    },
    /// The DSN does not parse for the dialect.
    #[error("invalid target: {dialect} DSN does not parse: {source}")]
    Dsn {
        /// The fleet's dialect.
        dialect: DialectKind,
        /// The driver's parse error (it never repeats the DSN).
        source: sqlx::Error,
    },
    /// The target asks for something the dialect cannot do.
    #[error("invalid target: {0}")]
    Unsupported(&'static str),
}

impl DbError {
    pub(crate) fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { context, source }
    }

    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }

    /// True when the tenant could not be reached or used at all, as opposed to a statement
    /// that failed on a working connection.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ConnectTimeout { .. }
                | Self::Io { .. }
                | Self::Dsn { .. }
                | Self::Unsupported(_)
        )
    }
}

/// One open connection to a tenant, used for the history table and for scripts.
#[async_trait]
pub trait Session: Send {
    /// Creates the history and log tables (and the schema) if they are missing.
    async fn ensure_history(&mut self) -> Result<(), DbError>;
    /// Every history row, ascending by version; empty when the table does not exist.
    async fn read_history(&mut self) -> Result<Vec<HistoryRecord>, DbError>;
    /// Inserts or replaces the row for `rec.version`.
    async fn write_record(&mut self, rec: &RecordWrite) -> Result<(), DbError>;
    /// Appends `rec` to the append-only log table (DESIGN.md rule 5).
    async fn append_log(&mut self, rec: &RecordWrite) -> Result<(), DbError>;
    /// Runs SQL text as-is over the simple protocol (several statements allowed).
    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error>;
    /// Closes the connection cleanly.
    async fn close(self: Box<Self>);
}

/// A lock held on a dedicated connection (or file) that no pool will ever reuse.
#[async_trait]
pub(crate) trait HeldLock: Send {
    /// Releases the lock and closes its connection.
    async fn release(self: Box<Self>) -> Result<(), DbError>;
}

/// Longest wait for a lock release or a connection close before the connection is dropped.
pub(crate) const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-tenant lock (DESIGN.md rule 3). Dropped without [`LockGuard::release`] — a
/// cancelled task, a panic — it drops its connection, and the server frees a session lock
/// when the session ends; a file lock is freed when its file is closed.
pub struct LockGuard {
    held: Option<Box<dyn HeldLock>>,
    /// How long acquiring took, for the lock-wait metric.
    pub waited: Duration,
}

impl LockGuard {
    /// Releases the lock and closes its connection.
    ///
    /// # Errors
    /// [`DbError::Query`] when the unlock statement failed; the connection is closed anyway,
    /// which ends the session and with it the lock.
    pub async fn release(mut self) -> Result<(), DbError> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        // A server that stops answering must not hold the tenant forever: on timeout the
        // release future, and with it the connection, is dropped, which ends the session.
        match tokio::time::timeout(RELEASE_TIMEOUT, held.release()).await {
            Ok(released) => released,
            Err(_) => Err(DbError::ReleaseTimeout {
                timeout_ms: RELEASE_TIMEOUT.as_millis() as u64,
            }),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.held.is_some() {
            tracing::warn!("tenant lock dropped without release; closing its connection");
        }
    }
}

/// One tenant's database: opens sessions and takes the tenant lock.
#[async_trait]
pub trait Database: Send + Sync {
    /// The dialect.
    fn kind(&self) -> DialectKind;
    /// Opens a new connection with the session settings applied.
    ///
    /// # Errors
    /// [`DbError::Connect`] or [`DbError::ConnectTimeout`] when the database is unreachable.
    async fn connect(&self) -> Result<Box<dyn Session>, DbError>;
    /// Takes the tenant lock, polling with backoff (10 ms doubling to 500 ms) for at most
    /// `timeout`; never a blocking wait on the server.
    ///
    /// # Errors
    /// [`DbError::LockTimeout`] when another session still holds it after `timeout`;
    /// [`DbError::Connect`] or [`DbError::ConnectTimeout`] when the database is unreachable.
    async fn lock(&self, timeout: Duration) -> Result<LockGuard, DbError>;
}

/// Reads a tenant's history on a session of its own, without creating anything.
///
/// # Errors
/// [`DbError::Connect`] or [`DbError::ConnectTimeout`] when the tenant is unreachable, [`DbError::Query`] when the read fails.
pub(crate) async fn read_history(db: &dyn Database) -> Result<Vec<HistoryRecord>, DbError> {
    let mut session = db.connect().await?;
    let history = session.read_history().await;
    session.close().await;
    history
}

/// Builds the database handle of one tenant. Nothing connects until it is used.
///
/// # Errors
/// [`DbError::Dsn`] when the DSN does not parse for `kind`; [`DbError::Unsupported`] when
/// `schema` is set for a dialect without schemas, or the target is an in-memory SQLite database.
pub fn open(kind: DialectKind, target: Target) -> Result<Box<dyn Database>, DbError> {
    if target.schema.is_some() && !kind.has_schemas() {
        return Err(DbError::Unsupported(
            "schema-per-tenant is only supported on postgres",
        ));
    }
    Ok(match kind {
        DialectKind::Postgres => Box::new(postgres::Postgres::new(target)?),
        DialectKind::Mysql => Box::new(mysql::Mysql::new(target)?),
        DialectKind::Sqlite => Box::new(sqlite::Sqlite::new(target)?),
    })
}

/// Polls `try_lock(state)` with backoff until it returns true or `timeout` passes.
async fn poll_lock<S, F>(
    lock: &str,
    timeout: Duration,
    state: &mut S,
    mut try_lock: F,
) -> Result<(), DbError>
where
    S: Send,
    F: for<'a> FnMut(&'a mut S) -> futures::future::BoxFuture<'a, Result<bool, DbError>>,
{
    let start = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(10);
    loop {
        if try_lock(state).await? {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(DbError::LockTimeout {
                lock: lock.to_owned(),
                waited_ms: waited.as_millis() as u64,
            });
        }
        tokio::time::sleep(backoff.min(timeout - waited)).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// Opens a connection within the target's connect timeout.
async fn connect_within<C, Fut>(timeout: Duration, connect: Fut) -> Result<C, DbError>
where
    Fut: Future<Output = Result<C, sqlx::Error>>,
{
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(DbError::Connect { source }),
        Err(_) => Err(DbError::ConnectTimeout {
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

/// Quotes an identifier with `q` (`"` or `` ` ``), doubling any embedded quote character.
fn quote(ident: &str, q: char) -> String {
    let doubled = format!("{q}{q}");
    format!("{q}{}{q}", ident.replace(q, &doubled))
}
