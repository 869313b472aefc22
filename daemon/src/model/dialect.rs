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

    /// True when DDL can be rolled back, so a migration and its history row commit together
    /// (DESIGN.md rule 1). MySQL commits implicitly before and after most DDL
    /// (MySQL 8.0 Reference Manual, 15.3.3 "Statements That Cause an Implicit Commit").
    pub fn transactional_ddl(self) -> bool {
        !matches!(self, Self::Mysql)
    }

    /// True when a tenant may be one schema of a shared database (PostgreSQL only).
    pub fn has_schemas(self) -> bool {
        matches!(self, Self::Postgres)
    }
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
