//! Databases behind two small traits: a [`Database`] opens [`Session`]s to one tenant, and a
//! session reads the history table, runs [`Item`]s (statements, resets, history rows) in as
//! few requests as it can, and takes, checks and releases the tenant lock.
//!
//! The engine's rules (transactions, recording, lock lifetimes) live in `migrate`; a dialect
//! only supplies primitives, so each rule is written once. Each database is data: a
//! [`spec::Dialect`] implementation, behind one generic session.
//!
//! | file | what |
//! | --- | --- |
//! | `spec.rs` | the `Dialect` trait: how one database spells, connects and locks |
//! | `session.rs` | the one generic sqlx session and its `connect` |
//! | `history.rs` | the history table from one column list: DDL, reads, literal writes, layouts |
//! | `batch.rs` | [`Item`]s packed into requests, and which one failed ([`ItemError`]) |
//! | `target.rs` | [`Target`]: where a tenant lives |
//! | `error.rs` | [`DbError`] |
//! | `introspect/` | a tenant's schema read into the canonical [`crate::model::SchemaModel`] |
//! | `foreign.rs` | another migration tool's history table, read for adoption |
//! | `many.rs` | the history tables of many schema tenants of one database in one query |
//! | `postgres.rs`, `mysql.rs`, `sqlite.rs` | one database each |

mod batch;
mod error;
mod foreign;
mod history;
mod introspect;
mod many;
mod mysql;
mod postgres;
mod session;
mod shared_sql;
mod spec;
mod sqlite;
mod target;

use std::time::Duration;

use async_trait::async_trait;

pub(crate) use batch::{Item, ItemError, Timing};
pub use error::DbError;
pub(crate) use error::{connection_lost, error_position};
pub(crate) use spec::Place;
pub use target::Target;

use crate::model::{DialectKind, ForeignRow, HistoryRecord, LockGuard, SchemaModel, SetFormat};
use session::SqlxDatabase;

/// Longest wait for a lock release or a connection close before the connection is dropped.
pub(crate) const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// One open connection to a tenant, with the session settings of its fleet applied: what the
/// engine needs of a database, and nothing more.
#[async_trait]
pub(crate) trait Session: Send {
    /// Every history row, ascending by version, in one round trip, and whether the table is
    /// ready to be written. Creates nothing: a table of an older layout is read as it is,
    /// its newer columns `None`.
    async fn read_history(&mut self) -> Result<History, DbError>;
    /// Every history row, as [`Session::read_history`], for a caller holding the tenant lock
    /// that will write: the history tables are created when missing (with the tenant's
    /// schema), and a table of an older layout is brought to today's before it is read.
    async fn prepare_history(&mut self) -> Result<Vec<HistoryRecord>, DbError>;
    /// Creates the history tables (and the tenant's schema) for a caller holding the tenant
    /// lock whose [`Session::read_history`] found none: one round trip, where
    /// [`Session::prepare_history`] would first look again.
    ///
    /// # Errors
    /// [`DbError::Query`] when the tables cannot be created.
    async fn create_history(&mut self) -> Result<(), DbError> {
        self.prepare_history().await.map(|_| ())
    }
    /// Every row of `tool`'s own history table (`_sqlx_migrations`, `flyway_schema_history`,
    /// …) in the tenant's schema, in the tool's order; `None` when the table does not exist.
    /// Reads only.
    async fn read_foreign(&mut self, tool: SetFormat) -> Result<Option<Vec<ForeignRow>>, DbError>;
    /// The history of each tenant whose identity ([`Database::identity`]) is in `tenants`,
    /// all in schemas of this session's database, in the order given, read in two round
    /// trips whatever their number: the catalog names the schemas that have the table, then
    /// one `UNION ALL` reads them all (`many.rs`). Creates nothing.
    ///
    /// `None` when one query cannot read them: a dialect without schemas, tenants whose
    /// tables differ in name, or a table of an older layout among them (read each alone).
    ///
    /// # Errors
    /// [`DbError::Query`] when the catalog or the tables cannot be read;
    /// [`DbError::Unsupported`] for an identity of another dialect.
    async fn read_histories(
        &mut self,
        _tenants: &[std::sync::Arc<dyn std::any::Any + Send + Sync>],
    ) -> Result<Option<Vec<History>>, DbError> {
        Ok(None)
    }
    /// Runs `items` in order, in as few requests as the dialect's batch limit allows, over
    /// the simple protocol. A transaction is whatever `BEGIN` and `COMMIT` items say.
    ///
    /// # Errors
    /// [`ItemError`] naming the item that failed (the ones before it completed, none after it
    /// ran) and the server's error; a history row whose version does not fit the table's
    /// version column fails before anything is sent.
    async fn run(&mut self, items: &[Item<'_>]) -> Result<(), ItemError>;
    /// Takes the tenant lock (DESIGN.md rule 3), polling with backoff (10 ms doubling to
    /// 500 ms) for at most `timeout`; never a blocking wait on the server. Returns how long
    /// it took.
    ///
    /// # Errors
    /// [`DbError::LockTimeout`] when another session still holds it after `timeout`.
    async fn lock(&mut self, timeout: Duration) -> Result<Duration, DbError>;
    /// The tenant's schema as the canonical model (`introspect/`), read from the catalog in
    /// one request: its schema (PostgreSQL) or database (MySQL) only, Avocet's own tables
    /// left out. Changes nothing but, on PostgreSQL, the session's `search_path` (set to the
    /// tenant's schema, as the next migration's reset sets it).
    ///
    /// # Errors
    /// [`DbError::Query`] when the catalog cannot be read; [`DbError::Unsupported`] for a
    /// session that cannot (the engine's scripted fake).
    async fn introspect(&mut self) -> Result<SchemaModel, DbError> {
        Err(DbError::Unsupported("reading the schema"))
    }
    /// A statement that fails unless the tenant lock this session took with
    /// [`Session::lock`] is still held by it; `None` before the lock is taken, and where the
    /// lock cannot be lost while the daemon lives (SQLite's file lock). It may run on any
    /// session of the tenant.
    fn lock_check(&self) -> Option<LockCheck>;
    /// Releases the tenant lock (and resets the session, where sessions reset in place).
    ///
    /// # Errors
    /// When the release failed or found the lock not held; the caller must close this
    /// session, never pool it, so that the server frees whatever it still holds.
    async fn unlock(&mut self) -> Result<(), DbError>;
    /// The statements that bound how long the statements after them may wait for a lock
    /// and run, as `guard` says (DESIGN.md rule 7); `local`: inside a transaction, ending
    /// with it. Empty when the guard sets nothing.
    fn guard_sql(&self, guard: &LockGuard, local: bool) -> Vec<String>;
    /// The sessions holding locks or open transactions in the tenant's database, as the
    /// server lists them, for the message of a migration that could not get its lock; empty
    /// when the server cannot say or the query fails.
    async fn holders(&mut self) -> String;
    /// After `statement` gave up waiting for a lock: drops what its attempt left behind
    /// (PostgreSQL's INVALID index of a `CREATE INDEX CONCURRENTLY`), and says what it
    /// dropped.
    ///
    /// # Errors
    /// [`DbError::Query`] when the check or the drop fails.
    async fn clean_leftover(&mut self, statement: &str) -> Result<Option<String>, DbError>;
    /// Where this session's database keeps a tenant of `target` (its schema or database),
    /// read on the session: for a tenant binding a session it did not open.
    ///
    /// # Errors
    /// [`DbError::Query`] when the read fails.
    async fn place(&mut self, target: &Target) -> Result<Place, DbError>;
    /// Makes the session act for another tenant of the same database (a schema tenant
    /// sharing its database's sessions): that tenant's history table, lock and reset. Only a
    /// clean session (no lock held, no migration running) is bound.
    ///
    /// # Errors
    /// [`DbError::Unsupported`] when `identity` is not of this session's dialect.
    fn bind(
        &mut self,
        identity: std::sync::Arc<dyn std::any::Any + Send + Sync>,
    ) -> Result<(), DbError>;
    /// Checks that the connection still answers.
    async fn ping(&mut self) -> Result<(), DbError>;
    /// The server's id of this session (PostgreSQL's backend pid, MySQL's connection id),
    /// read once and kept: what [`Database::cancel`] names. `None` for SQLite, or when the
    /// read failed.
    async fn server_id(&mut self) -> Option<u64> {
        None
    }
    /// Closes the connection cleanly, or drops it after [`RELEASE_TIMEOUT`].
    async fn close(self: Box<Self>);
}

/// What a read of the history table found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum History {
    /// No history table: nothing was ever recorded.
    Missing,
    /// A table made by an older release, read with `None` for its newer columns; a writer
    /// brings it to today's layout first ([`Session::prepare_history`]).
    Older(Vec<HistoryRecord>),
    /// A table of today's layout.
    Current(Vec<HistoryRecord>),
}

impl History {
    /// The records, `None` when there is no table.
    pub(crate) fn records(self) -> Option<Vec<HistoryRecord>> {
        match self {
            Self::Missing => None,
            Self::Older(r) | Self::Current(r) => Some(r),
        }
    }

    /// True when the table can be written as it is.
    pub(crate) fn ready(&self) -> bool {
        matches!(self, Self::Current(_))
    }
}

/// How the engine confirms that a tenant lock is still held ("locks that notice"): before
/// each statement of a non-transactional migration and before each commit. Lost locks end
/// the migration before its next statement with [`DbError::LockLost`].
#[derive(Debug, Clone)]
pub(crate) struct LockCheck {
    /// One statement that raises an error when the lock is gone, e.g. the session that held
    /// it was terminated or a script released it.
    pub(crate) sql: String,
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
    /// Where the tenant is, DSN included (secret), for the database's own tools (a
    /// backup's dump, a restore); `None` where there is no such target (the engine's fake).
    fn target(&self) -> Option<&Target> {
        None
    }
    /// True when the database does not exist yet and its first connection would create it
    /// (a SQLite file whose DSN says `mode=rwc`): it holds nothing, and a read need not, and
    /// must not, create it (issue 32, item 6). False for server databases.
    fn not_created(&self) -> bool {
        false
    }
    /// Makes `session`, opened by another tenant's database of the same server, database and
    /// credentials (a pool shared by the schemas of one database), act for this tenant. The
    /// first binding reads the tenant's place on the session; later ones cost nothing.
    ///
    /// # Errors
    /// [`DbError::Query`] when the place cannot be read.
    async fn bind(&self, session: &mut dyn Session) -> Result<(), DbError>;
    /// What [`Database::bind`] gives `session` for this tenant (where its history tables
    /// and lock are), for [`Session::read_histories`]; resolved as `bind` resolves it.
    ///
    /// # Errors
    /// As [`Database::bind`]; [`DbError::Unsupported`] for a database that has none (the
    /// engine's scripted fake).
    async fn identity(
        &self,
        _session: &mut dyn Session,
    ) -> Result<std::sync::Arc<dyn std::any::Any + Send + Sync>, DbError> {
        Err(DbError::Unsupported("reading several tenants at once"))
    }
    /// Opens a new connection with `session_init` and the tenant's schema applied.
    ///
    /// # Errors
    /// [`DbError::Connect`] or [`DbError::ConnectTimeout`] when the database is unreachable.
    async fn connect(&self) -> Result<Box<dyn Session>, DbError>;
    /// Cancels what the session with server id `id` ([`Session::server_id`]) runs now, on
    /// a connection of its own opened for it and closed afterwards: PostgreSQL's
    /// `pg_cancel_backend`, MySQL's `KILL QUERY`. The session stays open; its statement
    /// fails and its transaction rolls back.
    ///
    /// # Errors
    /// [`DbError::Unsupported`] for SQLite; the connection's or the statement's error.
    async fn cancel(&self, _id: u64) -> Result<(), DbError> {
        Err(DbError::Unsupported(
            "cancelling a statement on this database",
        ))
    }
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
        DialectKind::Postgres => Box::new(SqlxDatabase::<postgres::Pg>::new(target)?),
        DialectKind::Mysql => Box::new(SqlxDatabase::<mysql::My>::new(target)?),
        DialectKind::Sqlite => Box::new(SqlxDatabase::<sqlite::Lite>::new(target)?),
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
