//! MySQL and MariaDB: DDL auto-commits, so every script takes the non-transactional path;
//! the tenant lock is `GET_LOCK` polled with a zero timeout (MySQL 8.0 Reference Manual,
//! 14.14 "Locking Functions"). Connections use `utf8mb4`.

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use sha2::Digest;
use sqlx::{ConnectOptions, Connection, MySqlConnection, mysql::MySqlConnectOptions};

use super::{
    Database, DbError, DialectKind, HeldLock, LockGuard, Session, Target, connect_within,
    history::{Placeholders, SELECT_COLUMNS, SessionSql, log_insert_sql, sqlx_session, upsert_sql},
    poll_lock, quote,
};

/// `GET_LOCK` names are limited to 64 characters.
const MAX_LOCK_NAME: usize = 64;

pub(super) struct Mysql {
    opts: MySqlConnectOptions,
    target: Target,
}

/// The history SQL of one session, with the tables qualified by the session's `DATABASE()`
/// when it starts, so a script's `USE other_db` cannot send the history rows elsewhere.
fn session_sql(database: Option<&str>, history_table: &str) -> SessionSql {
    let qualify = |name: &str| match database {
        Some(db) => format!("{}.{}", quote(db, '`'), quote(name, '`')),
        None => quote(name, '`'),
    };
    let table = qualify(history_table);
    let log = qualify(&format!("{history_table}_log"));
    let create = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                    version BIGINT NOT NULL PRIMARY KEY,
                    name VARCHAR(255) NOT NULL,
                    checksum CHAR(64) NOT NULL,
                    status VARCHAR(16) NOT NULL,
                    batch BIGINT NOT NULL,
                    rollout_id VARCHAR(64) NOT NULL,
                    applied_by VARCHAR(255) NOT NULL,
                    started_at DATETIME(6) NOT NULL,
                    finished_at DATETIME(6) NULL,
                    duration_ms BIGINT NULL,
                    error TEXT NULL,
                    statements_done BIGINT NOT NULL,
                    statements_total BIGINT NOT NULL,
                    rolled_back_at DATETIME(6) NULL,
                    direction VARCHAR(4) NOT NULL
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {log} (
                    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    version BIGINT NOT NULL,
                    name VARCHAR(255) NOT NULL,
                    status VARCHAR(16) NOT NULL,
                    batch BIGINT NOT NULL,
                    rollout_id VARCHAR(64) NOT NULL,
                    applied_by VARCHAR(255) NOT NULL,
                    statements_done BIGINT NOT NULL,
                    error TEXT NULL,
                    direction VARCHAR(4) NOT NULL,
                    at DATETIME(6) NOT NULL
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        ),
    ];
    SessionSql {
        prelude: Vec::new(),
        exists: "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_name = ?"
            .into(),
        exists_arg: history_table.to_owned(),
        select: format!("SELECT {SELECT_COLUMNS} FROM {table} ORDER BY version"),
        upsert: upsert_sql(
            &table,
            Placeholders::Question,
            "ON DUPLICATE KEY UPDATE",
            "{c} = VALUES({c})",
        ),
        log_insert: log_insert_sql(&log, Placeholders::Question, "CURRENT_TIMESTAMP(6)"),
        create,
    }
}

impl Mysql {
    pub(super) fn new(target: Target) -> Result<Self, DbError> {
        let opts = MySqlConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Mysql,
                source,
            })?
            .charset("utf8mb4")
            .disable_statement_logging();
        Ok(Self { opts, target })
    }

    async fn open(&self) -> Result<MySqlConnection, DbError> {
        connect_within(
            self.target.connect_timeout,
            MySqlConnection::connect_with(&self.opts),
        )
        .await
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

#[async_trait]
impl Database for Mysql {
    fn kind(&self) -> DialectKind {
        DialectKind::Mysql
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        let mut conn = self.open().await?;
        for stmt in &self.target.session_init {
            sqlx::Executor::execute(&mut conn, stmt.as_str())
                .await
                .map_err(DbError::query("running session_init"))?;
        }
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::query("reading DATABASE()"))?;
        let sql = session_sql(database.as_deref(), &self.target.history_table);
        Ok(Box::new(MysqlSession {
            conn,
            sql: Arc::new(sql),
        }))
    }

    async fn lock(&self, timeout: Duration) -> Result<LockGuard, DbError> {
        let start = std::time::Instant::now();
        let mut conn = self.open().await?;
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::query("reading the lock name"))?;
        let name = lock_name(
            database.as_deref().unwrap_or_default(),
            &self.target.history_table,
        );
        let label = format!("GET_LOCK('{name}')");
        let n = name.clone();
        poll_lock(&label, timeout, &mut conn, |c| {
            let n = n.clone();
            Box::pin(async move {
                sqlx::query_scalar::<_, Option<i64>>("SELECT GET_LOCK(?, 0)")
                    .bind(n)
                    .fetch_one(c)
                    .await
                    .map(|got| got == Some(1))
                    .map_err(DbError::query("taking the named lock"))
            })
        })
        .await?;
        Ok(LockGuard {
            held: Some(Box::new(MysqlLock { conn, name })),
            waited: start.elapsed(),
        })
    }
}

struct MysqlLock {
    conn: MySqlConnection,
    name: String,
}

#[async_trait]
impl HeldLock for MysqlLock {
    async fn release(self: Box<Self>) -> Result<(), DbError> {
        let Self { mut conn, name } = *self;
        let released = sqlx::query_scalar::<_, Option<i64>>("SELECT RELEASE_LOCK(?)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::query("releasing the named lock"));
        // Closed either way: the session's end releases anything still held.
        let _ = conn.close().await;
        released.map(|_| ())
    }
}

sqlx_session!(MysqlSession, MySqlConnection);

#[cfg(test)]
mod tests {
    use super::lock_name;

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
}
