//! PostgreSQL: transactional DDL, session advisory locks polled with
//! `pg_try_advisory_lock` (PostgreSQL docs, 9.27.10 "Advisory Lock Functions"), and sessions
//! that reset in place between migrations, so one session serves a tenant's whole apply.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, PgConnection, postgres::PgConnectOptions};

use super::{
    DbError, DialectKind, Target,
    spec::{ColumnType, Dialect, Place, quote},
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

/// PostgreSQL.
pub(super) struct Pg;

#[async_trait]
impl Dialect for Pg {
    const KIND: DialectKind = DialectKind::Postgres;
    const QUOTE: char = '"';
    const TEXT: &'static str = "TEXT";
    const NOW: &'static str = "clock_timestamp()";
    const MISSING_TABLE: &'static str = "42P01";
    const MISSING_COLUMN: &'static str = "42703";
    const TABLE_OPTIONS: &'static str = "";
    const LOG_ID: &'static str = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY";

    type Conn = PgConnection;
    type Options = PgConnectOptions;
    /// The advisory key.
    type LockId = i64;
    /// True between a successful lock and unlock.
    type LockState = bool;

    /// An escape string `E'…'`, where `\` and `'` are the only characters to escape whatever
    /// `standard_conforming_strings` says (PostgreSQL docs, 4.1.2.2 "String Constants With
    /// C-Style Escapes").
    fn string(s: &str) -> String {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    }

    fn time(t: DateTime<Utc>) -> String {
        format!(
            "'{}'::timestamptz",
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }

    /// The transaction's start: the batch's `BEGIN` comes right before the script.
    fn started_in_batch(_: DateTime<Utc>) -> String {
        "now()".into()
    }

    const SERVER_ID: Option<&'static str> = Some("SELECT CAST(pg_backend_pid() AS TEXT)");

    fn cancel_sql(id: u64) -> Option<String> {
        Some(format!("SELECT CAST(pg_cancel_backend({id}) AS TEXT)"))
    }

    const HOLDERS: Option<&'static str> = Some(
        "SELECT string_agg(format('pid %s (%s, %s, transaction open %s s)', a.pid, \
         coalesce(nullif(a.application_name, ''), 'no application name'), a.state, \
         floor(extract(epoch FROM clock_timestamp() - a.xact_start))::bigint), '; ' \
         ORDER BY a.xact_start) FROM pg_stat_activity a \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
         AND a.xact_start IS NOT NULL AND EXISTS (SELECT 1 FROM pg_locks l \
         WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation')",
    );

    /// SQLSTATE 55P03 `lock_not_available`: `lock_timeout` ran out (PostgreSQL docs,
    /// Appendix A; 20.11.1 `lock_timeout`).
    fn is_lock_timeout(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "55P03")
    }

    /// `SET [LOCAL] lock_timeout` and `statement_timeout`, in milliseconds (PostgreSQL docs,
    /// 20.11.1 "Statement Behavior").
    fn guard_sql(lock: Option<Duration>, statement: Option<Duration>, local: bool) -> Vec<String> {
        let scope = if local { "LOCAL " } else { "" };
        let ms = |d: Duration| d.as_millis().max(1);
        lock.map(|d| format!("SET {scope}lock_timeout = '{}ms'", ms(d)))
            .into_iter()
            .chain(statement.map(|d| format!("SET {scope}statement_timeout = '{}ms'", ms(d))))
            .collect()
    }

    /// A named `CREATE INDEX CONCURRENTLY` that fails leaves an INVALID index behind
    /// (PostgreSQL docs, CREATE INDEX, "Building Indexes Concurrently"), which a retry with
    /// `IF NOT EXISTS` would keep: it is found with `pg_index.indisvalid` and dropped.
    fn leftover(statement: &str) -> Option<(String, String)> {
        use sqlparser::{ast::Statement, dialect::PostgreSqlDialect, parser::Parser};
        let parsed = Parser::parse_sql(&PostgreSqlDialect {}, statement).ok()?;
        let Some(Statement::CreateIndex(index)) = parsed.first() else {
            return None;
        };
        let name = index
            .name
            .as_ref()
            .filter(|_| index.concurrently)?
            .to_string();
        let check = format!(
            "SELECT CAST(1 AS TEXT) FROM pg_index WHERE indexrelid = to_regclass({}) \
             AND NOT indisvalid",
            Self::string(&name)
        );
        Some((check, format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")))
    }

    fn hex(expr: &str) -> String {
        format!("encode({expr}, 'hex')")
    }

    fn duration_ms(started: &str) -> String {
        format!("(extract(epoch FROM clock_timestamp() - {started}) * 1000)::bigint")
    }

    fn column_type(ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Version | ColumnType::Int => "BIGINT",
            ColumnType::Short(_) | ColumnType::Hash | ColumnType::Long => "TEXT",
            ColumnType::Time => "TIMESTAMPTZ",
        }
    }

    fn upsert(key: &str, columns: &[&str]) -> String {
        let sets: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        format!("ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
    }

    fn columns_sql(schema: Option<&str>, table: &str) -> String {
        format!(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = {} AND table_name = {}",
            Self::string(schema.unwrap_or("public")),
            Self::string(table)
        )
    }

    fn tables_sql(schemas: &[&str], table: &str) -> Option<String> {
        let names: Vec<String> = schemas.iter().map(|s| Self::string(s)).collect();
        Some(format!(
            "SELECT n.nspname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = {} AND c.relkind IN ('r', 'p') AND n.nspname IN ({})",
            Self::string(table),
            names.join(", ")
        ))
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

    fn host(opts: &PgConnectOptions) -> Option<String> {
        Some(format!("{}:{}", opts.get_host(), opts.get_port()))
    }

    async fn locate(conn: &mut PgConnection, target: &Target) -> Result<Place, DbError> {
        // Simple protocol: one round trip, one implicit transaction.
        let context = "reading current_database() and current_schema()";
        let row =
            sqlx::Executor::fetch_one(&mut *conn, "SELECT current_database(), current_schema()")
                .await
                .map_err(DbError::query(context))?;
        let (database, current): (String, Option<String>) =
            sqlx::FromRow::from_row(&row).map_err(DbError::query(context))?;
        let schema = match (&target.schema, current) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s,
            (None, None) => {
                return Err(DbError::Unsupported(
                    "no schema on the search_path: set one, or the tenant's schema",
                ));
            }
        };
        Ok(Place {
            schema: Some(schema),
            database: Some(database),
        })
    }

    fn lock_id(place: &Place, target: &Target) -> i64 {
        advisory_key(
            place.database.as_deref().unwrap_or_default(),
            place.schema.as_deref().unwrap_or_default(),
            &target.history_table,
        )
    }

    fn lock_name(key: &i64) -> String {
        format!("pg_advisory_lock({key})")
    }

    fn reset() -> &'static [&'static str] {
        &RESET
    }

    /// Held twice, so the lock check can release one hold and take it back without ever
    /// freeing the lock; if the first hold is refused, so is the second. Simple protocol
    /// with the key as a literal: one round trip per attempt.
    async fn try_lock(
        conn: &mut PgConnection,
        key: &i64,
        held: &mut bool,
    ) -> Result<bool, DbError> {
        let sql = format!("SELECT pg_try_advisory_lock({key}) AND pg_try_advisory_lock({key})");
        let row = sqlx::Executor::fetch_one(&mut *conn, sql.as_str())
            .await
            .map_err(DbError::query("taking the advisory lock"))?;
        *held = sqlx::Row::try_get::<bool, _>(&row, 0)
            .map_err(DbError::query("taking the advisory lock"))?;
        Ok(*held)
    }

    /// A query that fails unless this session holds the advisory lock `key`: it releases one
    /// hold and takes it again. The engine holds the tenant lock twice (a session's advisory
    /// locks count their holds, PostgreSQL docs, 9.27.10), so the release never frees it,
    /// and a release that finds no hold returns false ("returns false if the lock was not
    /// held"), which the cast turns into an error. It asks the lock manager of this session
    /// only: no scan of `pg_locks` (which copies the whole lock table, about 0.4 ms a call
    /// here) and no PL/pgSQL block (about 0.9 ms). Inside a migration's transaction it makes
    /// the commit depend on the lock; session-level lock calls are not undone by a rollback.
    fn lock_check(key: &i64, held: &bool) -> Option<String> {
        held.then(|| {
            format!(
                "SELECT CASE WHEN pg_advisory_unlock({key}) AND pg_try_advisory_lock({key}) \
                 THEN 1 ELSE ('avocet: the tenant lock is no longer held by backend ' \
                 || pg_backend_pid())::int END AS avocet_lock_held"
            )
        })
    }

    /// Resets the session and releases the lock in one request (one implicit transaction),
    /// so the session goes back to its pool as it came.
    async fn unlock(
        conn: &mut PgConnection,
        key: &i64,
        held: &mut bool,
        reset_sql: &str,
    ) -> Result<(), DbError> {
        *held = false;
        let sql =
            format!("{reset_sql};\nSELECT pg_advisory_unlock({key}) AND pg_advisory_unlock({key})");
        let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str())
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
                lock: Self::lock_name(key),
            }),
        }
    }
}

/// Key of the tenant lock: the first 8 bytes of SHA-256 over (database, schema, history
/// table), so two tenants sharing a database in different schemas never share a lock.
fn advisory_key(database: &str, schema: &str, table: &str) -> i64 {
    let digest = Sha256::digest(format!("avocet\0{database}\0{schema}\0{table}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

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
