//! MySQL and MariaDB: DDL auto-commits, so every script takes the non-transactional path;
//! the tenant lock is `GET_LOCK` polled with a zero timeout (MySQL 8.0 Reference Manual,
//! 14.14 "Locking Functions") on a session of its own. Connections use `utf8mb4`.
//!
//! A MySQL session cannot be reset in place while it keeps a `GET_LOCK`: the only full reset,
//! `COM_RESET_CONNECTION`, also releases user locks, and no statement lists a session's
//! temporary tables. So each migration runs on a session of its own, closed after it.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::Digest;
use sqlx::{ConnectOptions, MySqlConnection, mysql::MySqlConnectOptions};

use super::{
    DbError, DialectKind, Target,
    spec::{ColumnType, Dialect, Place, quote},
};

/// `GET_LOCK` names are limited to 64 characters.
const MAX_LOCK_NAME: usize = 64;

/// MySQL and MariaDB.
pub(super) struct My;

#[async_trait]
impl Dialect for My {
    const KIND: DialectKind = DialectKind::Mysql;
    const QUOTE: char = '`';
    const TEXT: &'static str = "CHAR";
    const NOW: &'static str = "UTC_TIMESTAMP(6)";
    const MISSING_TABLE: &'static str = "42S02";
    const MISSING_COLUMN: &'static str = "42S22";
    const TABLE_OPTIONS: &'static str = " ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";
    const LOG_ID: &'static str = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY";

    type Conn = MySqlConnection;
    type Options = MySqlConnectOptions;
    /// The lock's name.
    type LockId = String;
    /// `CONNECTION_ID()` of this session while it holds the tenant lock.
    type LockState = Option<u64>;

    /// A hexadecimal literal read as utf8mb4, which no `sql_mode` reinterprets (MySQL 8.0
    /// Reference Manual, 11.1.4 "Hexadecimal Literals").
    fn string(s: &str) -> String {
        format!("CONVERT(X'{}' USING utf8mb4)", hex::encode(s))
    }

    /// `DATETIME(6)` holds no zone: every time the engine writes is UTC, as
    /// [`Self::NOW`] is.
    fn time(t: DateTime<Utc>) -> String {
        format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
    }

    const SERVER_ID: Option<&'static str> = Some("SELECT CAST(CONNECTION_ID() AS CHAR)");

    fn cancel_sql(id: u64) -> Option<String> {
        Some(format!("KILL QUERY {id}"))
    }

    const HOLDERS: Option<&'static str> = Some(
        "SELECT GROUP_CONCAT(CONCAT('id ', t.trx_mysql_thread_id, ' (', \
         IFNULL(p.USER, 'unknown user'), ', ', IFNULL(p.COMMAND, ''), ', transaction open ', \
         TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), ' s)') SEPARATOR '; ') \
         FROM information_schema.INNODB_TRX t \
         LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
         WHERE t.trx_mysql_thread_id <> CONNECTION_ID() \
         AND (p.DB IS NULL OR p.DB = DATABASE())",
    );

    /// Error 1205 `ER_LOCK_WAIT_TIMEOUT`, for row locks (`innodb_lock_wait_timeout`) and
    /// metadata locks (`lock_wait_timeout`) alike (MySQL 8.0 Reference Manual, B.3.1).
    fn is_lock_timeout(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .is_some_and(|d| d.number() == 1205)
    }

    /// `lock_wait_timeout` and `innodb_lock_wait_timeout` take whole seconds, so a timeout
    /// rounds up to at least 1 s; `max_statement_time` is MariaDB's (seconds, fractions
    /// allowed). The session is the migration's own, closed after it, so `local` changes
    /// nothing.
    fn guard_sql(lock: Option<Duration>, statement: Option<Duration>, _local: bool) -> Vec<String> {
        let lock = lock.map(|d| {
            let s = d.as_millis().div_ceil(1000).max(1);
            format!("SET SESSION lock_wait_timeout = {s}, innodb_lock_wait_timeout = {s}")
        });
        let statement =
            statement.map(|d| format!("SET SESSION max_statement_time = {:.3}", d.as_secs_f64()));
        lock.into_iter().chain(statement).collect()
    }

    fn duration_ms(started: &str) -> String {
        format!("TIMESTAMPDIFF(MICROSECOND, {started}, UTC_TIMESTAMP(6)) DIV 1000")
    }

    fn column_type(ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Version | ColumnType::Int => "BIGINT",
            ColumnType::Short(4) => "VARCHAR(4)",
            ColumnType::Short(16) => "VARCHAR(16)",
            ColumnType::Short(64) => "VARCHAR(64)",
            ColumnType::Short(_) => "VARCHAR(255)",
            ColumnType::Hash => "CHAR(64)",
            ColumnType::Long => "TEXT",
            ColumnType::Time => "DATETIME(6)",
        }
    }

    fn upsert(_key: &str, columns: &[&str]) -> String {
        let sets: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = VALUES({c})"))
            .collect();
        format!("ON DUPLICATE KEY UPDATE {}", sets.join(", "))
    }

    fn columns_sql(schema: Option<&str>, table: &str) -> String {
        let schema = schema.map_or_else(|| "DATABASE()".to_owned(), Self::string);
        format!(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = {schema} AND table_name = {}",
            Self::string(table)
        )
    }

    fn options(target: &Target) -> Result<MySqlConnectOptions, DbError> {
        Ok(MySqlConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Mysql,
                source,
            })?
            .charset("utf8mb4")
            .disable_statement_logging())
    }

    fn host(opts: &MySqlConnectOptions) -> Option<String> {
        Some(format!("{}:{}", opts.get_host(), opts.get_port()))
    }

    /// The tables are qualified by `DATABASE()` of the tenant's first session, so a script's
    /// `USE other_db` cannot send the history rows elsewhere.
    async fn locate(conn: &mut MySqlConnection, _target: &Target) -> Result<Place, DbError> {
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut *conn)
            .await
            .map_err(DbError::query("reading DATABASE()"))?;
        let database = database.ok_or(DbError::Unsupported(
            "the DSN names no database: add /<database> to it",
        ))?;
        Ok(Place {
            schema: Some(database),
            database: None,
        })
    }

    fn lock_id(place: &Place, target: &Target) -> String {
        lock_name(
            place.schema.as_deref().unwrap_or_default(),
            &target.history_table,
        )
    }

    fn lock_name(name: &String) -> String {
        format!("GET_LOCK('{name}')")
    }

    async fn try_lock(
        conn: &mut MySqlConnection,
        name: &String,
        holder: &mut Option<u64>,
    ) -> Result<bool, DbError> {
        let (got, id) =
            sqlx::query_as::<_, (Option<i64>, u64)>("SELECT GET_LOCK(?, 0), CONNECTION_ID()")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .map_err(DbError::query("taking the named lock"))?;
        *holder = (got == Some(1)).then_some(id);
        Ok(holder.is_some())
    }

    /// The lock's session sits idle while the migrations run on sessions of their own: a
    /// server `wait_timeout` shorter than a migration would close it and free the lock
    /// (MySQL 8.0 Reference Manual, 7.1.8 "Server System Variables", `wait_timeout`). A day
    /// at least, for this session only; the lock check still notices any other loss.
    async fn after_lock(conn: &mut MySqlConnection) -> Result<(), DbError> {
        sqlx::Executor::execute(
            &mut *conn,
            "SET SESSION wait_timeout = GREATEST(@@SESSION.wait_timeout, 86400)",
        )
        .await
        .map(|_| ())
        .map_err(DbError::query("keeping the lock's session open"))
    }

    /// A query that fails with error 1242 ("Subquery returns more than 1 row") unless
    /// `IS_USED_LOCK(name)` is this session's `CONNECTION_ID()` (MySQL 8.0 Reference Manual,
    /// 14.14): the scalar subquery gains a second row when the lock is gone. Neither MySQL
    /// nor MariaDB can `SIGNAL` outside a stored program, and `DO` does not evaluate a
    /// subquery, hence this form.
    fn lock_check(name: &String, holder: &Option<u64>) -> Option<String> {
        let holder = (*holder)?;
        Some(format!(
            "SELECT (SELECT 1 UNION ALL SELECT 1 FROM DUAL \
             WHERE NOT (IS_USED_LOCK({}) <=> {holder})) AS avocet_lock_held",
            quote(name, '\'')
        ))
    }

    async fn unlock(
        conn: &mut MySqlConnection,
        name: &String,
        holder: &mut Option<u64>,
        _reset_sql: &str,
    ) -> Result<(), DbError> {
        *holder = None;
        let released = sqlx::query_scalar::<_, Option<i64>>("SELECT RELEASE_LOCK(?)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(DbError::query("releasing the named lock"))?;
        match released {
            Some(1) => Ok(()),
            _ => Err(DbError::LockNotHeld {
                lock: Self::lock_name(name),
            }),
        }
    }
}

/// `avocet:<database>.<table>`, or a SHA-256 prefix when that would pass 64 characters.
fn lock_name(database: &str, table: &str) -> String {
    let name = format!("avocet:{database}.{table}");
    if name.chars().count() <= MAX_LOCK_NAME {
        name
    } else {
        let digest = hex::encode(sha2::Sha256::digest(name.as_bytes()));
        format!("avocet:{}", &digest[..56])
    }
}

#[cfg(test)]
mod tests {
    use super::{Dialect, My, lock_name};

    #[test]
    fn lock_names_fit_in_64_characters() {
        assert_eq!(
            lock_name("t1", "avocet_migrations"),
            "avocet:t1.avocet_migrations"
        );
        let long = lock_name(&"d".repeat(64), "avocet_migrations");
        assert_eq!(long.len(), 63);
        assert_ne!(long, lock_name(&"e".repeat(64), "avocet_migrations"));
    }

    #[test]
    fn strings_are_hex_literals() {
        assert_eq!(My::string("a'b"), "CONVERT(X'612762' USING utf8mb4)");
    }
}
