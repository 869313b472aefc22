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
