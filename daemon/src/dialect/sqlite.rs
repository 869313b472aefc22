//! SQLite: transactional DDL; the tenant lock is an exclusive lock (`flock`) on a file beside
//! the database, `<database>.avocet-lock`, so it also excludes other processes. Opening a
//! SQLite connection costs no round trip, so each migration runs on a session of its own
//! rather than resetting one (a session's pragmas cannot be listed, so not all reset).

use std::{
    fs::{File, OpenOptions, TryLockError},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions, SqliteConnection, sqlite::SqliteConnectOptions};

use super::{
    DbError, DialectKind, Target,
    spec::{ColumnType, Dialect, Place},
};

/// The lock's name in errors: the path derives from the DSN, which stays out of errors
/// (DESIGN.md rule 6).
const LOCK_NAME: &str = "flock(<database>.avocet-lock)";

/// SQLite.
pub(super) struct Lite;

#[async_trait]
impl Dialect for Lite {
    const KIND: DialectKind = DialectKind::Sqlite;
    const QUOTE: char = '"';
    const TEXT: &'static str = "TEXT";
    const NOW: &'static str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
    const MISSING_TABLE: &'static str = "1";
    const MISSING_COLUMN: &'static str = "1";
    const TABLE_OPTIONS: &'static str = "";
    const LOG_ID: &'static str = "INTEGER PRIMARY KEY AUTOINCREMENT";

    type Conn = SqliteConnection;
    type Options = SqliteConnectOptions;
    /// The lock file beside the database.
    type LockId = PathBuf;
    /// The lock file, while this session holds the tenant lock; closing it frees the lock.
    type LockState = Option<File>;

    /// `'…'` with `'` doubled (SQLite docs, "Literal Values").
    fn string(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    /// The text [`Self::NOW`] writes: ISO 8601, milliseconds, `Z`.
    fn time(t: DateTime<Utc>) -> String {
        format!("'{}'", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }

    /// `SQLITE_BUSY` (5) or one of its extended codes: the file stayed locked through
    /// `busy_timeout` (SQLite docs, "Result and Error Codes").
    fn is_lock_timeout(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .and_then(|d| d.code())
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c & 0xff == 5)
    }

    /// `PRAGMA busy_timeout`, in milliseconds; SQLite has no statement timeout.
    fn guard_sql(
        lock: Option<Duration>,
        _statement: Option<Duration>,
        _local: bool,
    ) -> Vec<String> {
        lock.map(|d| format!("PRAGMA busy_timeout = {}", d.as_millis().max(1)))
            .into_iter()
            .collect()
    }

    fn duration_ms(started: &str) -> String {
        format!("CAST(round((julianday('now') - julianday({started})) * 86400000) AS INTEGER)")
    }

    fn column_type(ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Version | ColumnType::Int => "INTEGER",
            ColumnType::Short(_) | ColumnType::Hash | ColumnType::Long | ColumnType::Time => "TEXT",
        }
    }

    fn upsert(key: &str, columns: &[&str]) -> String {
        let sets: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        format!("ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
    }

    fn columns_sql(_schema: Option<&str>, table: &str) -> String {
        format!(
            "SELECT name FROM pragma_table_info({})",
            Self::string(table)
        )
    }

    fn options(target: &Target) -> Result<SqliteConnectOptions, DbError> {
        let options = SqliteConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Sqlite,
                source,
            })?
            .disable_statement_logging();
        let file = options.get_filename();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Err(DbError::Unsupported(
                "in-memory SQLite databases cannot be tenants: use a file",
            ));
        }
        Ok(options)
    }

    fn host(_: &SqliteConnectOptions) -> Option<String> {
        None
    }

    /// A SQLite file has one schema: the tables are unqualified.
    async fn locate(_: &mut SqliteConnection, _: &Target) -> Result<Place, DbError> {
        Ok(Place {
            schema: None,
            database: None,
        })
    }

    fn lock_id(_: &Place, target: &Target) -> PathBuf {
        let mut path = file(target).into_os_string();
        path.push(".avocet-lock");
        PathBuf::from(path)
    }

    fn lock_name(_: &PathBuf) -> String {
        LOCK_NAME.into()
    }

    async fn try_lock(
        _: &mut SqliteConnection,
        path: &PathBuf,
        held: &mut Option<File>,
    ) -> Result<bool, DbError> {
        let file = match held.take() {
            Some(file) => file,
            None => OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(DbError::io("opening the tenant's lock file"))?,
        };
        match file.try_lock() {
            Ok(()) => {
                *held = Some(file);
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(DbError::io("locking the tenant's lock file")(e)),
        }
    }

    /// The file lock lives in this process and ends only with it.
    fn lock_check(_: &PathBuf, _: &Option<File>) -> Option<String> {
        None
    }

    async fn unlock(
        _: &mut SqliteConnection,
        _: &PathBuf,
        held: &mut Option<File>,
        _reset_sql: &str,
    ) -> Result<(), DbError> {
        let Some(file) = held.take() else {
            return Err(DbError::LockNotHeld {
                lock: LOCK_NAME.into(),
            });
        };
        // Closing the file releases the lock as well.
        file.unlock()
            .map_err(DbError::io("unlocking the tenant's lock file"))
    }

    fn before_connect(target: &Target) -> Result<(), DbError> {
        match file(target).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
                .map_err(DbError::io("creating the database's directory")),
            _ => Ok(()),
        }
    }

    /// A file that does not exist and that the DSN's `mode=rwc` would create on connect.
    fn not_created(target: &Target) -> bool {
        let creates = target
            .dsn
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|kv| kv == "mode=rwc"));
        let file = file(target);
        creates && !file.as_os_str().is_empty() && !file.exists()
    }

    /// `SQLITE_CANTOPEN` (code 14) names the file and how to create it.
    fn connect_error(e: DbError, target: &Target) -> DbError {
        match e {
            DbError::Connect {
                source: sqlx::Error::Database(db),
            } if db.code().as_deref() == Some("14") => DbError::SqliteOpen {
                file: file(target),
                source: sqlx::Error::Database(db),
            },
            e => e,
        }
    }
}

/// The database's file, as the DSN names it (checked by [`Lite::options`]).
fn file(target: &Target) -> PathBuf {
    Lite::options(target)
        .map(|o| o.get_filename().to_owned())
        .unwrap_or_default()
}
