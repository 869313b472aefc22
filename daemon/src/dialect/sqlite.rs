//! SQLite: transactional DDL; the tenant lock is an exclusive lock (`flock`) on a file beside
//! the database, `<database>.avocet-lock`, so it also excludes other processes. Opening a
//! SQLite connection costs no round trip, so each migration runs on a session of its own
//! rather than resetting one (a session's pragmas cannot be listed, so not all reset).

use std::{
    fs::{File, OpenOptions, TryLockError},
    path::PathBuf,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{ConnectOptions, SqliteConnection, sqlite::SqliteConnectOptions};

use super::{
    Database, DbError, DialectKind, Session, Target, connect_within,
    history::{
        LEGACY_SELECT_COLUMNS, Placeholders, SELECT_COLUMNS, SessionSql, VersionColumn,
        log_insert_sql, select_sql, shared_sql, sqlx_session, upsert_sql, version_column,
    },
    literal::Style,
    poll_lock, quote,
};

/// An idle tenant holds its target, its file's path and a share of its fleet's history SQL;
/// connect options are parsed from the DSN when a session opens.
pub(super) struct Sqlite {
    file: PathBuf,
    target: Target,
    sql: Arc<SessionSql>,
}

impl Sqlite {
    pub(super) fn new(target: Target) -> Result<Self, DbError> {
        let file = Self::options(&target)?.get_filename().to_owned();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Err(DbError::Unsupported(
                "in-memory SQLite databases cannot be tenants: use a file",
            ));
        }
        let column = version_column(&target);
        let key = (
            DialectKind::Sqlite,
            "",
            target.history_table.as_str(),
            column,
        );
        let sql = shared_sql(key, || session_sql(&target.history_table, column));
        Ok(Self { file, target, sql })
    }

    fn options(target: &Target) -> Result<SqliteConnectOptions, DbError> {
        Ok(SqliteConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Sqlite,
                source,
            })?
            .disable_statement_logging())
    }

    fn make_parent_dir(&self) -> Result<(), DbError> {
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
                .map_err(DbError::io("creating the database's directory")),
            _ => Ok(()),
        }
    }
}

/// The history SQL of a SQLite tenant: unqualified, since a SQLite file has one schema.
fn session_sql(history_table: &str, column: VersionColumn) -> SessionSql {
    let table = quote(history_table, '"');
    let log = quote(&format!("{history_table}_log"), '"');
    let vtype = column.sql_type(DialectKind::Sqlite);
    let create = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                    version {vtype} PRIMARY KEY,
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
                    direction TEXT NOT NULL,
                    down_checksum TEXT)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {log} (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    version {vtype} NOT NULL,
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
    SessionSql {
        prelude: Vec::new(),
        tables: [table.clone(), log.clone()],
        missing_table_code: "1",
        missing_column_code: "1",
        version_column: column,
        select: select_sql(&table, "TEXT", SELECT_COLUMNS),
        select_legacy: select_sql(&table, "TEXT", LEGACY_SELECT_COLUMNS),
        upgrade: format!("ALTER TABLE {table} ADD COLUMN down_checksum TEXT"),
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
    }
}

#[async_trait]
impl Database for Sqlite {
    fn kind(&self) -> DialectKind {
        DialectKind::Sqlite
    }

    fn host(&self) -> Option<String> {
        None
    }

    fn namespace(&self) -> Option<String> {
        self.target.namespace()
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        self.make_parent_dir()?;
        let mut conn = connect_within(
            self.target.connect_timeout,
            sqlx::Connection::connect_with(&Self::options(&self.target)?),
        )
        .await
        .map_err(|e| match e {
            DbError::Connect {
                source: sqlx::Error::Database(db),
            } if db.code().as_deref() == Some("14") => DbError::SqliteOpen {
                file: self.file.clone(),
                source: sqlx::Error::Database(db),
            },
            e => e,
        })?;
        for stmt in &self.target.session_init {
            sqlx::Executor::execute(&mut conn, stmt.as_str())
                .await
                .map_err(DbError::query("running session_init"))?;
        }
        Ok(Box::new(SqliteSession {
            conn,
            sql: self.sql.clone(),
            reset: None,
            lock_path: self.lock_path(),
            lock: None,
        }))
    }
}

impl Sqlite {
    fn lock_path(&self) -> PathBuf {
        let mut path = self.file.clone().into_os_string();
        path.push(".avocet-lock");
        PathBuf::from(path)
    }
}

struct SqliteSession {
    conn: SqliteConnection,
    sql: Arc<SessionSql>,
    reset: Option<Arc<[String]>>,
    lock_path: PathBuf,
    /// The lock file, while this session holds the tenant lock; closing it frees the lock.
    lock: Option<File>,
}

impl SqliteSession {
    /// The file lock lives in this process and ends only with it.
    fn lock_check_impl(&self) -> Option<super::LockCheck> {
        None
    }

    async fn lock_impl(&mut self, timeout: Duration) -> Result<Duration, DbError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(DbError::io("opening the tenant's lock file"))?;
        // The path derives from the DSN, which stays out of errors (DESIGN.md rule 6).
        let name = "flock(<database>.avocet-lock)";
        let waited = poll_lock(name, timeout, &mut file, |f| {
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
        self.lock = Some(file);
        Ok(waited)
    }

    async fn unlock_impl(&mut self) -> Result<(), DbError> {
        let Some(file) = self.lock.take() else {
            return Err(DbError::LockNotHeld {
                lock: "flock(<database>.avocet-lock)".into(),
            });
        };
        // Closing the file releases the lock as well.
        file.unlock()
            .map_err(DbError::io("unlocking the tenant's lock file"))
    }
}

sqlx_session!(SqliteSession, SqliteConnection, persistent: true, batch_limit: 8 << 10, literals: Style::Sqlite);
