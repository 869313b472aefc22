//! PostgreSQL: transactional DDL, session advisory locks polled with
//! `pg_try_advisory_lock` (PostgreSQL docs, 9.27.10 "Advisory Lock Functions"), and sessions
//! that reset in place between migrations, so one session serves a tenant's whole apply.

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, PgConnection, postgres::PgConnectOptions};
use tokio::sync::OnceCell;

use super::{
    Database, DbError, DialectKind, Session, Target, connect_within,
    history::{
        LEGACY_SELECT_COLUMNS, Placeholders, SELECT_COLUMNS, SessionSql, VersionColumn,
        log_insert_sql, select_sql, shared_sql, sqlx_session, upsert_sql, version_column,
    },
    literal::Style,
    poll_lock, quote,
};

/// Returns a session to its state after connecting: everything `DISCARD ALL` does
/// (PostgreSQL docs, "DISCARD") except `pg_advisory_unlock_all()`, since the tenant lock
/// lives on this session, and in statements that may run in one request.
const RESET: [&str; 8] = [
    "CLOSE ALL",
    "SET SESSION AUTHORIZATION DEFAULT",
    "RESET ALL",
    "UNLISTEN *",
    "DISCARD TEMP",
    "DISCARD SEQUENCES",
    "DISCARD PLANS",
    "DEALLOCATE ALL",
];

/// Server-side TCP keepalive for the engine's sessions (PostgreSQL docs, 19.3.1): a daemon
/// host that vanishes loses its sessions, and with them its advisory locks, within about a
/// minute instead of the kernel's two hours.
const KEEPALIVE: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
];

/// An idle tenant holds its target and server address; connect options are parsed from the
/// DSN when a session opens, and the history SQL is shared with every tenant of the same
/// schema and table.
pub(super) struct Postgres {
    /// `host:port`.
    host: String,
    target: Target,
    /// Resolved on the first connection, then shared by every session of the tenant.
    identity: OnceCell<Arc<Identity>>,
}

/// Where the tenant's history table is and which lock guards it, resolved once per tenant
/// from (database, schema, history table), so the lock key and every history statement
/// derive from the same names.
struct Identity {
    sql: Arc<SessionSql>,
    lock_key: i64,
    lock_name: String,
    /// [`lock_check_sql`] of `lock_key`.
    lock_check: String,
    /// [`RESET`], then `session_init`: one statement each.
    reset: Arc<[String]>,
}

/// The history SQL of a tenant, with the tables qualified by `schema` (the tenant's
/// configured schema, or `current_schema()` on its first connection), so a script that
/// changes `search_path` cannot send the history rows elsewhere.
fn session_sql(
    schema: &str,
    history_table: &str,
    create_schema: bool,
    column: VersionColumn,
) -> SessionSql {
    let qualify = |name: &str| format!("{}.{}", quote(schema, '"'), quote(name, '"'));
    let table = qualify(history_table);
    let log = qualify(&format!("{history_table}_log"));
    let vtype = column.sql_type(DialectKind::Postgres);
    let create = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                    version {vtype} PRIMARY KEY,
                    name TEXT NOT NULL,
                    checksum TEXT NOT NULL,
                    status TEXT NOT NULL
                        CHECK (status IN ('running', 'applied', 'failed', 'rolled_back')),
                    batch BIGINT NOT NULL,
                    rollout_id TEXT NOT NULL,
                    applied_by TEXT NOT NULL,
                    started_at TIMESTAMPTZ NOT NULL,
                    finished_at TIMESTAMPTZ,
                    duration_ms BIGINT,
                    error TEXT,
                    statements_done BIGINT NOT NULL,
                    statements_total BIGINT NOT NULL,
                    rolled_back_at TIMESTAMPTZ,
                    direction TEXT NOT NULL,
                    down_checksum TEXT)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {log} (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    version {vtype} NOT NULL,
                    name TEXT NOT NULL,
                    status TEXT NOT NULL,
                    batch BIGINT NOT NULL,
                    rollout_id TEXT NOT NULL,
                    applied_by TEXT NOT NULL,
                    statements_done BIGINT NOT NULL,
                    error TEXT,
                    direction TEXT NOT NULL,
                    at TIMESTAMPTZ NOT NULL)"
        ),
    ];
    SessionSql {
        prelude: match create_schema {
            true => vec![format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote(schema, '"')
            )],
            false => Vec::new(),
        },
        tables: [table.clone(), log.clone()],
        missing_table_code: "42P01",
        missing_column_code: "42703",
        version_column: column,
        select: select_sql(&table, "TEXT", SELECT_COLUMNS),
        select_legacy: select_sql(&table, "TEXT", LEGACY_SELECT_COLUMNS),
        upgrade: format!("ALTER TABLE {table} ADD COLUMN down_checksum TEXT"),
        upsert: upsert_sql(
            &table,
            Placeholders::Numbered,
            "ON CONFLICT (version) DO UPDATE SET",
            "{c} = EXCLUDED.{c}",
        ),
        log_insert: log_insert_sql(&log, Placeholders::Numbered, "now()"),
        create,
    }
}

impl Postgres {
    pub(super) fn new(target: Target) -> Result<Self, DbError> {
        let opts = Self::options(&target)?;
        Ok(Self {
            host: format!("{}:{}", opts.get_host(), opts.get_port()),
            target,
            identity: OnceCell::new(),
        })
    }

    fn options(target: &Target) -> Result<PgConnectOptions, DbError> {
        let mut opts = PgConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Postgres,
                source,
            })?
            .application_name("avocetd")
            .options(KEEPALIVE)
            .disable_statement_logging();
        if let Some(schema) = &target.schema {
            // A startup parameter, so `RESET ALL` returns to it: a migration can never land
            // in another schema, before or after a reset.
            opts = opts.options([("search_path", quote(schema, '"'))]);
        }
        Ok(opts)
    }

    async fn resolve(&self, conn: &mut PgConnection) -> Result<Arc<Identity>, DbError> {
        // Simple protocol: one round trip, one implicit transaction.
        let context = "reading current_database() and current_schema()";
        let sql = "SELECT current_database(), current_schema()";
        let row = sqlx::Executor::fetch_one(&mut *conn, sql)
            .await
            .map_err(DbError::query(context))?;
        let (database, current): (String, Option<String>) =
            sqlx::FromRow::from_row(&row).map_err(DbError::query(context))?;
        let schema = match (&self.target.schema, current) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s,
            (None, None) => {
                return Err(DbError::Unsupported(
                    "no schema on the search_path: set one, or the tenant's schema",
                ));
            }
        };
        let table = &self.target.history_table;
        let lock_key = advisory_key(&database, &schema, table);
        let reset: Arc<[String]> = RESET
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.target.session_init.iter().cloned())
            .collect();
        let column = version_column(&self.target);
        Ok(Arc::new(Identity {
            sql: shared_sql((DialectKind::Postgres, &schema, table, column), || {
                session_sql(&schema, table, self.target.schema.is_some(), column)
            }),
            lock_key,
            lock_name: format!("pg_advisory_lock({lock_key})"),
            lock_check: lock_check_sql(lock_key),
            reset,
        }))
    }
}

#[async_trait]
impl Database for Postgres {
    fn kind(&self) -> DialectKind {
        DialectKind::Postgres
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
        Ok(Box::new(PgSession {
            conn,
            sql: identity.sql.clone(),
            reset: Some(identity.reset.clone()),
            identity,
            held: false,
        }))
    }
}

/// Key of the tenant lock: the first 8 bytes of SHA-256 over (database, schema, history
/// table), so two tenants sharing a database in different schemas never share a lock.
fn advisory_key(database: &str, schema: &str, table: &str) -> i64 {
    let digest = Sha256::digest(format!("avocet\0{database}\0{schema}\0{table}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A query that fails unless this session holds the advisory lock `key`: it releases one
/// hold and takes it again. The engine holds the tenant lock twice (a session's advisory
/// locks count their holds, PostgreSQL docs, 9.27.10), so the release never frees it, and a
/// release that finds no hold returns false (PostgreSQL docs, 9.27.10: "returns false if the
/// lock was not held"), which the cast turns into an error. It asks the lock manager of this
/// session only: no scan of `pg_locks` (which copies the whole lock table, about 0.4 ms a
/// call here) and no PL/pgSQL block (about 0.9 ms). Inside a migration's transaction it makes
/// the commit depend on the lock; session-level lock calls are not undone by a rollback.
fn lock_check_sql(key: i64) -> String {
    format!(
        "SELECT CASE WHEN pg_advisory_unlock({key}) AND pg_try_advisory_lock({key}) THEN 1 \
         ELSE ('avocet: the tenant lock is no longer held by backend ' \
         || pg_backend_pid())::int END AS avocet_lock_held"
    )
}

struct PgSession {
    conn: PgConnection,
    sql: Arc<SessionSql>,
    reset: Option<Arc<[String]>>,
    identity: Arc<Identity>,
    /// True between a successful `lock` and `unlock`.
    held: bool,
}

impl PgSession {
    fn lock_check_impl(&self) -> Option<super::LockCheck> {
        self.held.then(|| super::LockCheck {
            sql: self.identity.lock_check.clone(),
            joins: false,
            lock: self.identity.lock_name.clone(),
        })
    }

    async fn lock_impl(&mut self, timeout: Duration) -> Result<Duration, DbError> {
        let key = self.identity.lock_key;
        let name = self.identity.lock_name.clone();
        // Simple protocol with the key as a literal: one round trip per attempt.
        // Held twice, so the lock check can release one hold and take it back without ever
        // freeing the lock; if the first hold is refused, so is the second.
        let sql = format!("SELECT pg_try_advisory_lock({key}) AND pg_try_advisory_lock({key})");
        let waited = poll_lock(&name, timeout, &mut self.conn, |c| {
            let sql = sql.clone();
            Box::pin(async move {
                let row = sqlx::Executor::fetch_one(c, sql.as_str())
                    .await
                    .map_err(DbError::query("taking the advisory lock"))?;
                sqlx::Row::try_get::<bool, _>(&row, 0)
                    .map_err(DbError::query("taking the advisory lock"))
            })
        })
        .await?;
        self.held = true;
        Ok(waited)
    }

    /// Resets the session and releases the lock in one request (one implicit transaction),
    /// so the session goes back to its pool as it came.
    async fn unlock_impl(&mut self) -> Result<(), DbError> {
        self.held = false;
        let mut sql = self.identity.reset.join(";\n");
        sql.push_str(&format!(
            ";\nSELECT pg_advisory_unlock({0}) AND pg_advisory_unlock({0})",
            self.identity.lock_key
        ));
        let rows = sqlx::Executor::fetch_all(&mut self.conn, sql.as_str())
            .await
            .map_err(DbError::query("releasing the advisory lock"))?;
        let released = match rows.first() {
            Some(row) => sqlx::Row::try_get::<bool, _>(row, 0)
                .map_err(DbError::query("releasing the advisory lock"))?,
            None => false,
        };
        match released {
            true => Ok(()),
            false => Err(DbError::LockNotHeld {
                lock: self.identity.lock_name.clone(),
            }),
        }
    }
}

sqlx_session!(PgSession, PgConnection, persistent: false, batch_limit: 1 << 20, literals: Style::Postgres);

#[cfg(test)]
mod tests {
    use super::advisory_key;

    #[test]
    fn lock_key_depends_on_database_schema_and_table() {
        let k = advisory_key("db", "public", "avocet_migrations");
        assert_eq!(k, advisory_key("db", "public", "avocet_migrations"));
        assert_ne!(k, advisory_key("db", "tenant_a", "avocet_migrations"));
        assert_ne!(k, advisory_key("db2", "public", "avocet_migrations"));
        assert_ne!(k, advisory_key("db", "public", "other_history"));
    }
}
