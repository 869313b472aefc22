//! PostgreSQL: transactional DDL, session advisory locks polled with
//! `pg_try_advisory_lock` (PostgreSQL docs, 9.27.10 "Advisory Lock Functions").

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, Connection, PgConnection, postgres::PgConnectOptions};

use super::{
    Database, DbError, DialectKind, HeldLock, LockGuard, Session, Target, connect_within,
    history::{Placeholders, SELECT_COLUMNS, SessionSql, log_insert_sql, sqlx_session, upsert_sql},
    poll_lock, quote,
};

pub(super) struct Postgres {
    opts: PgConnectOptions,
    target: Target,
    /// The quoted schema, for `search_path`.
    schema: Option<String>,
}

/// The history SQL of one session, with the tables qualified by `schema` (the tenant's
/// configured schema, or the session's `current_schema()` when it starts), so a script that
/// changes `search_path` cannot send the history rows elsewhere.
fn session_sql(schema: Option<&str>, history_table: &str, create_schema: bool) -> SessionSql {
    let qualify = |name: &str| match schema {
        Some(s) => format!("{}.{}", quote(s, '"'), quote(name, '"')),
        None => quote(name, '"'),
    };
    let table = qualify(history_table);
    let log = qualify(&format!("{history_table}_log"));
    let create = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                    version BIGINT PRIMARY KEY,
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
                    direction TEXT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {log} (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    version BIGINT NOT NULL,
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
        prelude: match (create_schema, schema) {
            (true, Some(s)) => vec![format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s, '"'))],
            _ => Vec::new(),
        },
        exists: "SELECT COUNT(*) FROM (SELECT to_regclass($1) AS r) t WHERE r IS NOT NULL".into(),
        exists_arg: table.clone(),
        select: format!("SELECT {SELECT_COLUMNS} FROM {table} ORDER BY version"),
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
        let opts = PgConnectOptions::from_str(&target.dsn)
            .map_err(|source| DbError::Dsn {
                dialect: DialectKind::Postgres,
                source,
            })?
            .application_name("avocetd")
            .disable_statement_logging();
        let schema = target.schema.as_deref().map(|s| quote(s, '"'));
        Ok(Self {
            opts,
            target,
            schema,
        })
    }

    async fn open(&self) -> Result<PgConnection, DbError> {
        connect_within(
            self.target.connect_timeout,
            PgConnection::connect_with(&self.opts),
        )
        .await
    }
}

#[async_trait]
impl Database for Postgres {
    fn kind(&self) -> DialectKind {
        DialectKind::Postgres
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        let mut conn = self.open().await?;
        if let Some(schema) = &self.schema {
            // Per connection, so a migration can never land in another tenant's schema.
            sqlx::Executor::execute(&mut conn, format!("SET search_path TO {schema}").as_str())
                .await
                .map_err(DbError::query("setting search_path"))?;
        }
        for stmt in &self.target.session_init {
            sqlx::Executor::execute(&mut conn, stmt.as_str())
                .await
                .map_err(DbError::query("running session_init"))?;
        }
        let resolved: Option<String> = match &self.target.schema {
            Some(s) => Some(s.clone()),
            None => sqlx::query_scalar("SELECT current_schema()")
                .fetch_one(&mut conn)
                .await
                .map_err(DbError::query("reading current_schema()"))?,
        };
        let sql = session_sql(
            resolved.as_deref(),
            &self.target.history_table,
            self.target.schema.is_some(),
        );
        Ok(Box::new(PgSession {
            conn,
            sql: Arc::new(sql),
        }))
    }

    async fn lock(&self, timeout: Duration) -> Result<LockGuard, DbError> {
        let start = std::time::Instant::now();
        let mut conn = self.open().await?;
        let (database, current_schema): (String, Option<String>) =
            sqlx::query_as("SELECT current_database(), current_schema()")
                .fetch_one(&mut conn)
                .await
                .map_err(DbError::query("reading the lock key"))?;
        let schema = self
            .target
            .schema
            .clone()
            .or(current_schema)
            .unwrap_or_default();
        let key = advisory_key(&database, &schema, &self.target.history_table);
        let name = format!("pg_advisory_lock({key})");
        poll_lock(&name, timeout, &mut conn, |c| {
            Box::pin(async move {
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(c)
                    .await
                    .map_err(DbError::query("taking the advisory lock"))
            })
        })
        .await?;
        Ok(LockGuard {
            held: Some(Box::new(PgLock { conn, key })),
            waited: start.elapsed(),
        })
    }
}

/// Key of the tenant lock: the first 8 bytes of SHA-256 over (database, schema, history
/// table), so two tenants sharing a database in different schemas never share a lock.
fn advisory_key(database: &str, schema: &str, table: &str) -> i64 {
    let digest = Sha256::digest(format!("avocet\0{database}\0{schema}\0{table}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

struct PgLock {
    conn: PgConnection,
    key: i64,
}

#[async_trait]
impl HeldLock for PgLock {
    async fn release(self: Box<Self>) -> Result<(), DbError> {
        let Self { mut conn, key } = *self;
        let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::query("releasing the advisory lock"));
        // Closed either way: the session's end releases anything still held.
        let _ = conn.close().await;
        unlocked.map(|_| ())
    }
}

sqlx_session!(PgSession, PgConnection);

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
