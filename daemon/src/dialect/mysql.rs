//! MySQL and MariaDB: DDL auto-commits, so every script takes the non-transactional path;
//! the tenant lock is `GET_LOCK` polled with a zero timeout (MySQL 8.0 Reference Manual,
//! 14.14 "Locking Functions") on a session of its own. Connections use `utf8mb4`.
//!
//! A MySQL session cannot be reset in place while it keeps a `GET_LOCK`: the only full reset,
//! `COM_RESET_CONNECTION`, also releases user locks, and no statement lists a session's
//! temporary tables. So each migration runs on a session of its own, closed after it.

use std::{str::FromStr, sync::Arc, time::Duration};

use tokio::sync::OnceCell;

use async_trait::async_trait;
use sha2::Digest;
use sqlx::{ConnectOptions, MySqlConnection, mysql::MySqlConnectOptions};

use super::{
    Database, DbError, DialectKind, Session, Target, connect_within,
    history::{
        LEGACY_SELECT_COLUMNS, Placeholders, SELECT_COLUMNS, SessionSql, VersionColumn,
        log_insert_sql, select_sql, shared_sql, sqlx_session, upsert_sql, version_column,
    },
    literal::Style,
    poll_lock, quote,
};

/// `GET_LOCK` names are limited to 64 characters.
const MAX_LOCK_NAME: usize = 64;

/// An idle tenant holds its target and server address; connect options are parsed from the
/// DSN when a session opens.
pub(super) struct Mysql {
    /// `host:port`.
    host: String,
    target: Target,
    /// Resolved on the first connection, then shared by every session of the tenant.
    identity: OnceCell<Arc<Identity>>,
}

/// The tenant's history SQL and lock name, both from its `DATABASE()` and history table.
struct Identity {
    sql: Arc<SessionSql>,
    lock_name: String,
}

/// The history SQL of a tenant, with the tables qualified by `DATABASE()` of its first
/// session, so a script's `USE other_db` cannot send the history rows elsewhere.
fn session_sql(database: &str, history_table: &str, column: VersionColumn) -> SessionSql {
    let qualify = |name: &str| format!("{}.{}", quote(database, '`'), quote(name, '`'));
    let table = qualify(history_table);
    let log = qualify(&format!("{history_table}_log"));
    let vtype = column.sql_type(DialectKind::Mysql);
    let create = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                    version {vtype} NOT NULL PRIMARY KEY,
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
                    direction VARCHAR(4) NOT NULL,
                    down_checksum CHAR(64) NULL
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {log} (
                    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    version {vtype} NOT NULL,
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
        tables: [table.clone(), log.clone()],
        missing_table_code: "42S02",
        missing_column_code: "42S22",
        version_column: column,
        select: select_sql(&table, "CHAR", SELECT_COLUMNS),
        select_legacy: select_sql(&table, "CHAR", LEGACY_SELECT_COLUMNS),
        upgrade: format!("ALTER TABLE {table} ADD COLUMN down_checksum CHAR(64) NULL"),
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
        let opts = Self::options(&target)?;
        Ok(Self {
            host: format!("{}:{}", opts.get_host(), opts.get_port()),
            target,
            identity: OnceCell::new(),
        })
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

    async fn resolve(&self, conn: &mut MySqlConnection) -> Result<Arc<Identity>, DbError> {
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut *conn)
            .await
            .map_err(DbError::query("reading DATABASE()"))?;
        let database = database.ok_or(DbError::Unsupported(
            "the DSN names no database: add /<database> to it",
        ))?;
        let table = &self.target.history_table;
        let column = version_column(&self.target);
        Ok(Arc::new(Identity {
            sql: shared_sql((DialectKind::Mysql, &database, table, column), || {
                session_sql(&database, table, column)
            }),
            lock_name: lock_name(&database, table),
        }))
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

    fn host(&self) -> Option<String> {
        Some(self.host.clone())
    }

    fn namespace(&self) -> Option<String> {
        self.target.namespace()
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        let mut conn = connect_within(
            self.target.connect_timeout,
            sqlx::Connection::connect_with(&Self::options(&self.target)?),
        )
        .await?;
        for stmt in &self.target.session_init {
            sqlx::Executor::execute(&mut conn, stmt.as_str())
                .await
                .map_err(DbError::query("running session_init"))?;
        }
        let identity = self
            .identity
            .get_or_try_init(|| self.resolve(&mut conn))
            .await?
            .clone();
        Ok(Box::new(MysqlSession {
            conn,
            sql: identity.sql.clone(),
            reset: None,
            identity,
            holder: None,
        }))
    }
}

struct MysqlSession {
    conn: MySqlConnection,
    sql: Arc<SessionSql>,
    reset: Option<Arc<[String]>>,
    identity: Arc<Identity>,
    /// `CONNECTION_ID()` of this session while it holds the tenant lock.
    holder: Option<u64>,
}

impl MysqlSession {
    /// A query that fails with error 1242 ("Subquery returns more than 1 row") unless
    /// `IS_USED_LOCK(name)` is this session's `CONNECTION_ID()` (MySQL 8.0 Reference Manual,
    /// 14.14): the scalar subquery gains a second row when the lock is gone. Neither MySQL
    /// nor MariaDB can `SIGNAL` outside a stored program, and `DO` does not evaluate a
    /// subquery, hence this form.
    fn lock_check_impl(&self) -> Option<super::LockCheck> {
        let holder = self.holder?;
        let name = &self.identity.lock_name;
        Some(super::LockCheck {
            sql: format!(
                "SELECT (SELECT 1 UNION ALL SELECT 1 FROM DUAL \
                 WHERE NOT (IS_USED_LOCK({}) <=> {holder})) AS avocet_lock_held",
                quote(name, '\'')
            ),
            joins: true,
            lock: format!("GET_LOCK('{name}')"),
        })
    }

    async fn lock_impl(&mut self, timeout: Duration) -> Result<Duration, DbError> {
        let name = self.identity.lock_name.clone();
        let label = format!("GET_LOCK('{name}')");
        let mut holder = None;
        let waited = poll_lock(
            &label,
            timeout,
            &mut (&mut self.conn, &mut holder),
            |(c, h)| {
                let n = name.clone();
                Box::pin(async move {
                    let (got, id) = sqlx::query_as::<_, (Option<i64>, u64)>(
                        "SELECT GET_LOCK(?, 0), CONNECTION_ID()",
                    )
                    .bind(n)
                    .fetch_one(&mut **c)
                    .await
                    .map_err(DbError::query("taking the named lock"))?;
                    **h = Some(id);
                    Ok(got == Some(1))
                })
            },
        )
        .await?;
        self.holder = holder;
        // The lock's session sits idle while the migrations run on sessions of their own: a
        // server `wait_timeout` shorter than a migration would close it and free the lock
        // (MySQL 8.0 Reference Manual, 7.1.8 "Server System Variables", `wait_timeout`). A
        // day at least, for this session only; the lock check still notices any other loss.
        sqlx::Executor::execute(
            &mut self.conn,
            "SET SESSION wait_timeout = GREATEST(@@SESSION.wait_timeout, 86400)",
        )
        .await
        .map_err(DbError::query("keeping the lock's session open"))?;
        Ok(waited)
    }

    async fn unlock_impl(&mut self) -> Result<(), DbError> {
        self.holder = None;
        let name = &self.identity.lock_name;
        let released = sqlx::query_scalar::<_, Option<i64>>("SELECT RELEASE_LOCK(?)")
            .bind(name)
            .fetch_one(&mut self.conn)
            .await
            .map_err(DbError::query("releasing the named lock"))?;
        match released {
            Some(1) => Ok(()),
            _ => Err(DbError::LockNotHeld {
                lock: format!("GET_LOCK('{name}')"),
            }),
        }
    }
}

sqlx_session!(MysqlSession, MySqlConnection, persistent: true, batch_limit: 1 << 20, literals: Style::Mysql);

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
