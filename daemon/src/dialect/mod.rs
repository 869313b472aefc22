//! Databases behind two small traits: a [`Database`] opens [`Session`]s to one tenant, and a
//! session reads and writes the history table, runs scripts in batches, takes the tenant
//! lock and resets itself. One file per database.
//!
//! The engine's rules (transactions, recording, lock lifetimes) live in `rollout`; a dialect
//! only supplies primitives, so each rule is written once.
//!
//! | file | what |
//! | --- | --- |
//! | `target.rs` | [`Target`]: where a tenant lives |
//! | `error.rs` | [`DbError`], and the batch error with its statement count |
//! | `foreign.rs` | another migration tool's history table, read for adoption |
//! | `history.rs` | the history table's columns and the SQL every dialect shares |
//! | `literal.rs` | history rows as SQL literals, for writes inside one batch |
//! | `postgres.rs`, `mysql.rs`, `sqlite.rs` | one database each |

mod error;
mod foreign;
mod history;
mod literal;
mod mysql;
mod postgres;
mod sqlite;
mod target;

use std::time::Duration;

use async_trait::async_trait;

pub use error::DbError;
pub(crate) use error::{BatchError, connection_lost, error_position};
pub use target::Target;

use crate::model::{DialectKind, ForeignRow, HistoryRecord, RecordWrite, SetFormat};

/// Longest wait for a lock release or a connection close before the connection is dropped.
pub(crate) const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// One open connection to a tenant, with the session settings of its fleet applied.
#[async_trait]
pub(crate) trait Session: Send {
    /// Every history row, ascending by version, in one round trip; `None` when the history
    /// table does not exist. Creates nothing.
    /// A table made before the `down_checksum` column is read as it is, that column `None`.
    async fn read_history(&mut self) -> Result<Option<Vec<HistoryRecord>>, DbError>;
    /// Every history row, as [`Session::read_history`], for a caller holding the tenant lock
    /// that will write: the history tables are created when missing, and a table made before
    /// the `down_checksum` column gains it (`ALTER TABLE … ADD COLUMN`) before it is read.
    async fn prepare_history(&mut self) -> Result<Vec<HistoryRecord>, DbError>;
    /// Every row of `tool`'s own history table (`_sqlx_migrations`, `flyway_schema_history`,
    /// …) in the tenant's schema, in the tool's order; `None` when the table does not exist.
    /// Reads only.
    async fn read_foreign(&mut self, tool: SetFormat) -> Result<Option<Vec<ForeignRow>>, DbError>;
    /// Creates the history and log tables (and the tenant's schema) if they are missing.
    async fn create_history(&mut self) -> Result<(), DbError>;
    /// Inserts or replaces the row for `rec.version`.
    async fn write_record(&mut self, rec: &RecordWrite) -> Result<(), DbError>;
    /// Appends `rec` to the append-only log table (DESIGN.md rule 5).
    async fn append_log(&mut self, rec: &RecordWrite) -> Result<(), DbError>;
    /// The upsert of `rec` and its log insert as two `;`-separated statements with every
    /// value a literal, to run inside a batch after a script. The finish time and duration
    /// are taken when the statement runs, so they cover the script before it.
    fn record_sql(&self, rec: &RecordWrite) -> String;
    /// Runs `sql` (several `;`-separated statements) in one request over the simple
    /// protocol and returns how many statements completed.
    ///
    /// # Errors
    /// [`BatchError`] with the number of statements that completed before the failing one.
    async fn execute_batch(&mut self, sql: &str) -> Result<u64, BatchError>;
    /// Largest request [`Session::execute_batch`] should be given, in bytes: a larger
    /// script is sent in several.
    fn batch_limit(&self) -> usize;
    /// Takes the tenant lock (DESIGN.md rule 3), polling with backoff (10 ms doubling to
    /// 500 ms) for at most `timeout`; never a blocking wait on the server. Returns how long
    /// it took.
    ///
    /// # Errors
    /// [`DbError::LockTimeout`] when another session still holds it after `timeout`.
    async fn lock(&mut self, timeout: Duration) -> Result<Duration, DbError>;
    /// A statement that fails unless the tenant lock this session took with
    /// [`Session::lock`] is still held by it; `None` before the lock is taken, and where the
    /// lock cannot be lost while the daemon lives (SQLite's file lock). It may run on any
    /// session of the tenant.
    fn lock_check(&self) -> Option<LockCheck>;
    /// Releases the tenant lock.
    ///
    /// # Errors
    /// When the release failed or found the lock not held; the caller must close this
    /// session, never pool it, so that the server frees whatever it still holds.
    async fn unlock(&mut self) -> Result<(), DbError>;
    /// Statements that return this session to its state right after connecting (session
    /// variables, `search_path`, temporary tables, prepared statements, cursors), then run
    /// `session_init` again, one statement each; `None` when the dialect cannot reset a
    /// session in place and each migration needs a session of its own.
    fn reset_sql(&self) -> Option<&[String]>;
    /// Checks that the connection still answers.
    async fn ping(&mut self) -> Result<(), DbError>;
    /// Closes the connection cleanly, or drops it after [`RELEASE_TIMEOUT`].
    async fn close(self: Box<Self>);
}

/// How the engine confirms that a tenant lock is still held ("locks that notice"): before
/// each statement of a non-transactional migration and before each commit. Lost locks end
/// the migration before its next statement with [`DbError::LockLost`].
#[derive(Debug, Clone)]
pub(crate) struct LockCheck {
    /// One statement that raises an error when the lock is gone, e.g. the session that held
    /// it was terminated or a script released it.
    pub(crate) sql: String,
    /// True when it may share one request with a statement that must run outside a
    /// transaction (MySQL); false where a request of several statements is one implicit
    /// transaction (PostgreSQL docs, 55.2.2.1 "Multiple Statements in a Simple Query"), so
    /// it is sent alone before such a statement.
    pub(crate) joins: bool,
    /// The lock's key or name, for errors.
    pub(crate) lock: String,
}

/// One tenant's database: opens sessions. Nothing connects until a session is asked for.
#[async_trait]
pub(crate) trait Database: Send + Sync {
    /// The dialect.
    fn kind(&self) -> DialectKind;
    /// `host:port` of the server, the key of the per-host connection budget; `None` for
    /// SQLite files.
    fn host(&self) -> Option<String>;
    /// `db.namespace` for spans ([`Target::namespace`]).
    fn namespace(&self) -> Option<String>;
    /// True when a session resets in place ([`Session::reset_sql`]), so one session holds
    /// the lock and runs every migration of a tenant; false when the lock has a session of
    /// its own and each migration gets a new one.
    fn resets_in_place(&self) -> bool {
        self.kind() == DialectKind::Postgres
    }
    /// Opens a new connection with `session_init` and the tenant's schema applied.
    ///
    /// # Errors
    /// [`DbError::Connect`] or [`DbError::ConnectTimeout`] when the database is unreachable.
    async fn connect(&self) -> Result<Box<dyn Session>, DbError>;
}

/// Builds the database handle of one tenant. Nothing connects until it is used.
///
/// # Errors
/// [`DbError::Scheme`] when the DSN's scheme is not `kind`'s; [`DbError::Dsn`] when the DSN
/// does not parse for `kind`; [`DbError::Unsupported`] when
/// `schema` is set for a dialect without schemas, or the target is an in-memory SQLite
/// database.
pub(crate) fn open(kind: DialectKind, target: Target) -> Result<Box<dyn Database>, DbError> {
    if !kind.accepts_dsn(&target.dsn) {
        return Err(DbError::Scheme { dialect: kind });
    }
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

/// A tenant lock taken the way the engine takes it, on a session of its own: for operators'
/// maintenance scripts and for tests that need a lock held by "another daemon".
pub struct TenantLock {
    session: Box<dyn Session>,
}

impl TenantLock {
    /// Connects to `target` and takes its tenant lock within `timeout`.
    ///
    /// # Errors
    /// [`DbError::Dsn`]/[`DbError::Unsupported`] for an unusable target; connection errors;
    /// [`DbError::LockTimeout`] when another session holds the lock past `timeout`.
    pub async fn acquire(
        kind: DialectKind,
        target: Target,
        timeout: Duration,
    ) -> Result<Self, DbError> {
        let mut session = open(kind, target)?.connect().await?;
        session.lock(timeout).await?;
        Ok(Self { session })
    }

    /// Releases the lock and closes its session.
    ///
    /// # Errors
    /// When the release failed; the session is closed anyway, which frees the lock.
    pub async fn release(mut self) -> Result<(), DbError> {
        let released = self.session.unlock().await;
        self.session.close().await;
        released
    }
}

/// Polls `try_lock(state)` with backoff until it returns true or `timeout` passes; returns
/// how long it took.
async fn poll_lock<S, F>(
    lock: &str,
    timeout: Duration,
    state: &mut S,
    mut try_lock: F,
) -> Result<Duration, DbError>
where
    S: Send,
    F: for<'a> FnMut(&'a mut S) -> futures::future::BoxFuture<'a, Result<bool, DbError>>,
{
    let start = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(10);
    loop {
        if try_lock(state).await? {
            return Ok(start.elapsed());
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
