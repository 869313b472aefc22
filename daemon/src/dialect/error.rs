//! What a database operation can fail with. Messages never contain the DSN.

use crate::model::DialectKind;

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
    /// SQLite could not open the tenant's file (`SQLITE_CANTOPEN`, code 14): it does not
    /// exist and the DSN does not ask to create it, or it cannot be read.
    #[error(
        "cannot open SQLite file {}: {source}; to create it, add ?mode=rwc to the DSN",
        file.display()
    )]
    SqliteOpen {
        /// The file.
        file: std::path::PathBuf,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// No connection opened within the target's connect timeout.
    #[error("no connection within {timeout_ms} ms")]
    ConnectTimeout {
        /// The timeout, ms.
        timeout_ms: u64,
    },
    /// The tenant did not answer a read within its deadline.
    #[error("no answer within {timeout_ms} ms")]
    Deadline {
        /// The deadline, ms.
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
    /// The lock was gone when the engine released it: something else freed it while the
    /// tenant was being migrated.
    #[error("lock {lock} was not held when released")]
    LockNotHeld {
        /// The lock's key or name.
        lock: String,
    },
    /// The tenant lock was found gone while a migration ran (its session was terminated,
    /// the network dropped it, or a script released it): the migration stopped before its
    /// next statement, rolled back where it is transactional.
    #[error("lock {lock} was lost during the migration: {cause}; nothing ran after that point")]
    LockLost {
        /// The lock's key or name.
        lock: String,
        /// What showed it: the server's error, or the failed check.
        cause: String,
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
    /// The DSN's scheme is not one of the fleet's dialect (a `postgres://` DSN in a SQLite
    /// fleet, `http://`).
    #[error("invalid target: the DSN's scheme is not {dialect}'s (expected {})", dialect.schemes().join(": or "))]
    Scheme {
        /// The fleet's dialect.
        dialect: DialectKind,
    },
    /// The target asks for something the dialect cannot do.
    #[error("invalid target: {0}")]
    Unsupported(&'static str),
    /// The daemon cancelled the migration's statement on its server at the end of its
    /// shutdown grace; the transaction rolled back, so nothing of it is applied.
    #[error(
        "cancelled on the server at the end of the daemon's shutdown grace ({cause}); its \
         transaction rolled back, nothing of it is applied"
    )]
    Cancelled {
        /// The server's error.
        cause: String,
    },
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
                | Self::SqliteOpen { .. }
                | Self::ConnectTimeout { .. }
                | Self::Deadline { .. }
                | Self::Io { .. }
                | Self::Dsn { .. }
                | Self::Scheme { .. }
                | Self::Unsupported(_)
        )
    }
}

/// True when `e` means the connection is gone rather than a statement having failed: a
/// broken transport, or a server error of SQLSTATE class 08 (connection exception) or 57P
/// (the server ends the session: `pg_terminate_backend` sends 57P01 admin_shutdown before it
/// closes the socket; PostgreSQL docs, Appendix A "PostgreSQL Error Codes").
pub(crate) fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        ),
    }
}

/// Where PostgreSQL places error `e` in the query it was sent: a 1-based position in
/// characters (its `position` field), when it gives one. Other databases give none.
pub(crate) fn error_position(e: &sqlx::Error) -> Option<usize> {
    let pg = e
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    match pg.position()? {
        sqlx::postgres::PgErrorPosition::Original(p) => Some(p),
        _ => None,
    }
}
