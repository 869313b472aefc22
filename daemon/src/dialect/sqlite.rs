//! SQLite: transactional DDL; the tenant lock is an exclusive lock (`flock`) on a file beside
//! the database, `<database>.avocet-lock`, so it also excludes other processes.

use std::{
    fs::{File, OpenOptions, TryLockError},
    path::PathBuf,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{ConnectOptions, Connection, SqliteConnection, sqlite::SqliteConnectOptions};

use super::{
    Database, DbError, DialectKind, HeldLock, LockGuard, Session, Target, connect_within,
    history::{Placeholders, SELECT_COLUMNS, SessionSql, log_insert_sql, sqlx_session, upsert_sql},
    poll_lock, quote,
};

pub(super) struct Sqlite {
    opts: SqliteConnectOptions,
    file: PathBuf,
    target: Target,
    sql: Arc<SessionSql>,
}

impl Sqlite {
    pub(super) fn new(target: Target) -> Result<Self, DbError> {
        let opts = SqliteConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Sqlite,
                source,
            })?
            .disable_statement_logging();
        let file = opts.get_filename().to_owned();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Err(DbError::Unsupported(
                "in-memory SQLite databases cannot be tenants: use a file",
            ));
        }
        let table = quote(&target.history_table, '"');
        let log = quote(&format!("{}_log", target.history_table), '"');
        let create = [
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    checksum TEXT NOT NULL,
                    status TEXT NOT NULL
                        CHECK (status IN ('running', 'applied', 'failed', 'rolled_back')),
                    batch INTEGER NOT NULL,
                    rollout_id TEXT NOT NULL,
                    applied_by TEXT NOT NULL,
                    started_at TEXT NOT NULL,
                    finished_at TEXT,
                    duration_ms INTEGER,
                    error TEXT,
                    statements_done INTEGER NOT NULL,
                    statements_total INTEGER NOT NULL,
                    rolled_back_at TEXT,
                    direction TEXT NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {log} (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    version INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    status TEXT NOT NULL,
                    batch INTEGER NOT NULL,
                    rollout_id TEXT NOT NULL,
                    applied_by TEXT NOT NULL,
                    statements_done INTEGER NOT NULL,
                    error TEXT,
                    direction TEXT NOT NULL,
                    at TEXT NOT NULL)"
            ),
        ];
        let sql = SessionSql {
            prelude: Vec::new(),
            exists: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?".into(),
            exists_arg: target.history_table.clone(),
            select: format!("SELECT {SELECT_COLUMNS} FROM {table} ORDER BY version"),
            upsert: upsert_sql(
                &table,
                Placeholders::Question,
                "ON CONFLICT (version) DO UPDATE SET",
                "{c} = excluded.{c}",
            ),
            log_insert: log_insert_sql(
                &log,
                Placeholders::Question,
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            ),
            create,
        };
        Ok(Self {
            opts,
            file,
            target,
            sql: Arc::new(sql),
        })
    }

    fn make_parent_dir(&self) -> Result<(), DbError> {
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
                .map_err(DbError::io("creating the database's directory")),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Database for Sqlite {
    fn kind(&self) -> DialectKind {
        DialectKind::Sqlite
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        self.make_parent_dir()?;
        let mut conn = connect_within(
            self.target.connect_timeout,
            SqliteConnection::connect_with(&self.opts),
        )
        .await?;
        for stmt in &self.target.session_init {
            sqlx::Executor::execute(&mut conn, stmt.as_str())
                .await
                .map_err(DbError::query("running session_init"))?;
        }
        Ok(Box::new(SqliteSession {
            conn,
            sql: self.sql.clone(),
        }))
    }

    async fn lock(&self, timeout: Duration) -> Result<LockGuard, DbError> {
        let start = std::time::Instant::now();
        self.make_parent_dir()?;
        let mut path = self.file.clone().into_os_string();
        path.push(".avocet-lock");
        let path = PathBuf::from(path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(DbError::io("opening the tenant's lock file"))?;
        // The path derives from the DSN, which stays out of errors (DESIGN.md rule 6).
        let name = "flock(<database>.avocet-lock)".to_owned();
        let mut file = file;
        poll_lock(&name, timeout, &mut file, |f| {
            let result = match f.try_lock() {
                Ok(()) => Ok(true),
                Err(TryLockError::WouldBlock) => Ok(false),
                Err(TryLockError::Error(e)) => {
                    Err(DbError::io("locking the tenant's lock file")(e))
                }
            };
            Box::pin(std::future::ready(result))
        })
        .await?;
        Ok(LockGuard {
            held: Some(Box::new(FileLock(file))),
            waited: start.elapsed(),
        })
    }
}

struct FileLock(File);

#[async_trait]
impl HeldLock for FileLock {
    async fn release(self: Box<Self>) -> Result<(), DbError> {
        // Closing the file below releases the lock as well.
        self.0
            .unlock()
            .map_err(DbError::io("unlocking the tenant's lock file"))
    }
}

sqlx_session!(SqliteSession, SqliteConnection);
