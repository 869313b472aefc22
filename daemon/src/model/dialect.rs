//! Which database a fleet runs on, and what that database can do.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Which database a fleet runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectKind {
    /// PostgreSQL 12 or newer: transactional DDL, session advisory locks.
    Postgres,
    /// MySQL 8 or MariaDB 10.6 or newer: DDL auto-commits, `GET_LOCK`.
    #[serde(alias = "mariadb")]
    Mysql,
    /// SQLite 3.35 or newer: transactional DDL, a lock on a file beside the database.
    Sqlite,
}

impl DialectKind {
    /// The configuration spelling: `postgres`, `mysql` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    /// What this database can do: the one table the engine branches on.
    pub const fn caps(self) -> Capabilities {
        match self {
            Self::Postgres => Capabilities {
                transactional_ddl: true,
                schemas: true,
                resets_in_place: true,
                lock_check_joins: false,
                lock_can_be_lost: true,
                batch_limit: 1 << 20,
            },
            Self::Mysql => Capabilities {
                transactional_ddl: false,
                schemas: false,
                resets_in_place: false,
                lock_check_joins: true,
                lock_can_be_lost: true,
                batch_limit: 1 << 20,
            },
            Self::Sqlite => Capabilities {
                transactional_ddl: true,
                schemas: false,
                resets_in_place: false,
                lock_check_joins: false,
                lock_can_be_lost: false,
                batch_limit: 8 << 10,
            },
        }
    }

    /// [`Capabilities::transactional_ddl`].
    pub const fn transactional_ddl(self) -> bool {
        self.caps().transactional_ddl
    }

    /// URL schemes of this dialect's DSNs, as sqlx's drivers accept them: `postgres:` and
    /// `postgresql:`; `mysql:` and `mariadb:`; `sqlite:`.
    pub fn schemes(self) -> &'static [&'static str] {
        match self {
            Self::Postgres => &["postgres", "postgresql"],
            Self::Mysql => &["mysql", "mariadb"],
            Self::Sqlite => &["sqlite"],
        }
    }

    /// True when `dsn`'s scheme (the text before the first `:`) is one of
    /// [`DialectKind::schemes`], ignoring ASCII case.
    pub fn accepts_dsn(self, dsn: &str) -> bool {
        dsn.split_once(':').is_some_and(|(scheme, _)| {
            self.schemes()
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme))
        })
    }

    /// [`Capabilities::schemas`].
    pub const fn has_schemas(self) -> bool {
        self.caps().schemas
    }
}

/// What a database can do, as the engine needs to know it. Every branch of the engine on the
/// dialect reads one of these fields, never the dialect's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// DDL can be rolled back, so a migration and its history row commit together
    /// (DESIGN.md rule 1). MySQL commits implicitly before and after most DDL (MySQL 8.0
    /// Reference Manual, 15.3.3 "Statements That Cause an Implicit Commit").
    pub transactional_ddl: bool,
    /// A tenant may be one schema of a shared database (PostgreSQL).
    pub schemas: bool,
    /// A session returns to its state after connecting in place (PostgreSQL: `DISCARD`
    /// and friends), so one session holds the tenant lock and runs every migration of the
    /// tenant. Elsewhere the lock has a session of its own and each migration a new one:
    /// MySQL's only full reset (`COM_RESET_CONNECTION`) releases user locks, and a SQLite
    /// session's pragmas cannot be listed.
    pub resets_in_place: bool,
    /// The lock check may share one request with a statement that must run outside a
    /// transaction (MySQL). Where a request of several statements is one implicit
    /// transaction (PostgreSQL docs, 55.2.2.1 "Multiple Statements in a Simple Query") it
    /// is sent alone before such a statement.
    pub lock_check_joins: bool,
    /// The tenant lock can be lost while the daemon lives (a server-side session that can be
    /// terminated), so it is checked before each commit and each statement outside a
    /// transaction; false for SQLite's lock on a file, which lives in this process.
    pub lock_can_be_lost: bool,
    /// The largest request sent at once, in bytes: a larger script goes in several requests
    /// split at statement boundaries, so no request, and no server-side parse, grows with
    /// the file.
    pub batch_limit: usize,
}

impl fmt::Display for DialectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DialectKind {
    type Err = String;

    /// Parses `postgres` (or `postgresql`), `mysql` (or `mariadb`) and `sqlite`.
    ///
    /// # Errors
    /// A sentence naming the unknown spelling and the accepted ones.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::Mysql),
            "sqlite" => Ok(Self::Sqlite),
            other => Err(format!(
                "unknown dialect {other:?}: expected postgres, mysql or sqlite"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DialectKind;

    #[test]
    fn a_dsn_is_accepted_only_by_its_own_dialect() {
        assert!(DialectKind::Postgres.accepts_dsn("postgres://u:p@h/db"));
        assert!(DialectKind::Postgres.accepts_dsn("PostgreSQL://h/db"));
        assert!(!DialectKind::Postgres.accepts_dsn("mysql://h/db"));
        assert!(DialectKind::Mysql.accepts_dsn("mariadb://h/db"));
        assert!(!DialectKind::Sqlite.accepts_dsn("postgres://u:p@h/db"));
        assert!(DialectKind::Sqlite.accepts_dsn("sqlite://data/t.db?mode=rwc"));
        assert!(!DialectKind::Sqlite.accepts_dsn("http://h/db"));
        assert!(!DialectKind::Sqlite.accepts_dsn("t.db"));
    }
}
