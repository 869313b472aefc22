//! What must hold on every tenant after any fault (issue 12): the history table agrees with
//! the schema, no migration ran twice, no tenant lock is left, no `running` record, and
//! (once the daemon has stopped) no session of the daemon's is left on the server.
//!
//! The sets the fault suite runs are built by [`counted_set`]: migration `v` creates table
//! `t{v}` and, as its last statement, inserts `v` into `effects`, a table the suite creates
//! before the daemon starts, so a migration that ran twice shows two rows.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use avocet_daemon::DialectKind;
use sqlx::Row;

use avocet_client::RolloutRecord;

use crate::{Fleet, MigrationCopy, VersionField, pb};

/// What a check looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    /// Tenants checked.
    pub tenants: usize,
    /// Applied migrations whose table and single effect row were found.
    pub migrations: usize,
}

/// A set of `n` migrations as [`counted_set`] describes; `slow` makes migration 2 sleep
/// that many seconds first (PostgreSQL `pg_sleep`, MySQL `SLEEP`).
///
/// # Errors
/// When a file cannot be written.
pub fn counted_set(
    dialect: DialectKind,
    n: i64,
    slow: Option<f64>,
) -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    for v in 1..=n {
        let sleep = match (slow, v, dialect) {
            (Some(s), 2, DialectKind::Postgres) => format!("SELECT pg_sleep({s});\n"),
            (Some(s), 2, DialectKind::Mysql) => format!("DO SLEEP({s});\n"),
            _ => String::new(),
        };
        set.write(
            &format!("{v:04}_m{v}.up.sql"),
            &format!(
                "{sleep}CREATE TABLE t{v} (id int);\nINSERT INTO effects (version) VALUES ({v});\n"
            ),
        )?;
        set.write(
            &format!("{v:04}_m{v}.down.sql"),
            &format!("DROP TABLE t{v};\nDELETE FROM effects WHERE version = {v};\n"),
        )?;
    }
    Ok(set)
}

/// Creates the `effects` table on every tenant of `fleet`.
///
/// # Errors
/// When a tenant cannot be written.
pub async fn prepare(fleet: &Fleet) -> anyhow::Result<()> {
    for i in 0..fleet.tenants.len() {
        fleet
            .exec(i, "CREATE TABLE effects (version int NOT NULL)")
            .await?;
    }
    Ok(())
}

async fn ints(fleet: &Fleet, i: usize, sql: &str) -> anyhow::Result<Vec<i64>> {
    let mut conn = fleet.connect(i).await?;
    let rows = match sqlx::query(sql).fetch_all(&mut conn).await {
        Ok(rows) => rows,
        // No history table: nothing applied.
        Err(e) if e.to_string().contains("avocet_migrations") => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let _ = sqlx::Connection::close(conn).await;
    rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)?)).collect()
}

/// The versions in tenant `i`'s `effects` table, one per row, in no order.
///
/// # Errors
/// When the tenant cannot be read.
pub async fn effects(fleet: &Fleet, i: usize) -> anyhow::Result<Vec<i64>> {
    let sql = match fleet.dialect {
        DialectKind::Mysql => "SELECT CAST(version AS SIGNED) FROM effects",
        _ => "SELECT CAST(version AS BIGINT) FROM effects",
    };
    ints(fleet, i, sql).await
}

/// Checks every tenant of `fleet`: its `applied` versions are exactly those whose table
/// exists and whose effect row is there once; no version has more than one effect row; no
/// record is `running`; the tenant lock is free; and when `daemon_stopped`, no other session
/// is connected to the tenant's database.
///
/// # Errors
/// A sentence naming the tenant and what does not hold.
pub async fn check(fleet: &Fleet, daemon_stopped: bool) -> anyhow::Result<Checked> {
    let mut checked = Checked::default();
    for i in 0..fleet.tenants.len() {
        let id = &fleet.tenants[i].id;
        let applied: BTreeSet<i64> = ints(
            fleet,
            i,
            "SELECT version FROM avocet_migrations WHERE status = 'applied'",
        )
        .await?
        .into_iter()
        .collect();
        let running = ints(
            fleet,
            i,
            "SELECT version FROM avocet_migrations WHERE status = 'running'",
        )
        .await?;
        ensure!(running.is_empty(), "{id}: running records {running:?}");
        let effects = effects(fleet, i).await?;
        let mut once = BTreeSet::new();
        for v in &effects {
            ensure!(
                once.insert(*v),
                "{id}: migration {v} ran twice ({effects:?})"
            );
        }
        let tables: BTreeSet<i64> = fleet
            .objects(i, "BASE TABLE")
            .await?
            .iter()
            .filter_map(|t| t.strip_prefix('t')?.parse().ok())
            .collect();
        ensure!(
            applied == once && applied == tables,
            "{id}: history says {applied:?}, effects {once:?}, tables {tables:?}"
        );
        ensure!(
            lock_free(fleet, i).await?,
            "{id}: the tenant lock is still held"
        );
        if daemon_stopped {
            // The server drops a closed session's thread shortly after the close (MariaDB
            // lists it for a few ms more): a session the daemon left open stays for good.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut sessions = others_connected(fleet, i).await?;
            while sessions > 0 && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                sessions = others_connected(fleet, i).await?;
            }
            ensure!(
                sessions == 0,
                "{id}: {sessions} session(s) left connected after 5 s"
            );
        }
        checked.tenants += 1;
        checked.migrations += applied.len();
    }
    Ok(checked)
}

/// True when no session holds the tenant's lock (see [`lock_holder`]).
async fn lock_free(fleet: &Fleet, i: usize) -> anyhow::Result<bool> {
    Ok(lock_holder(fleet, i).await?.is_none())
}

/// The session holding tenant `i`'s lock, if any: the backend pid holding an advisory lock
/// in the tenant's PostgreSQL database, the connection id `IS_USED_LOCK` names for its
/// MySQL lock name (SQLite: a file lock the process drops with its descriptor, `None`).
///
/// # Errors
/// When the tenant cannot be read.
pub async fn lock_holder(fleet: &Fleet, i: usize) -> anyhow::Result<Option<String>> {
    let sql = match fleet.dialect {
        DialectKind::Postgres => {
            "SELECT CAST(pid AS TEXT) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             LIMIT 1"
        }
        DialectKind::Mysql => {
            "SELECT CAST(IS_USED_LOCK(CONCAT('avocet:', DATABASE(), '.avocet_migrations')) \
             AS CHAR)"
        }
        DialectKind::Sqlite => return Ok(None),
    };
    fleet.scalar(i, sql).await
}

/// Ends session `id` (a PostgreSQL backend pid, a MySQL connection id) from tenant `i`'s
/// database, server-side: `pg_terminate_backend`, `KILL`.
///
/// # Errors
/// When the server refuses.
pub async fn end_session(fleet: &Fleet, i: usize, id: &str) -> anyhow::Result<()> {
    match fleet.dialect {
        DialectKind::Postgres => {
            let done = fleet
                .scalar(
                    i,
                    &format!("SELECT CAST(pg_terminate_backend({id}) AS TEXT)"),
                )
                .await?;
            ensure!(
                done.as_deref() == Some("true"),
                "session {id} not terminated"
            );
        }
        _ => fleet.exec(i, &format!("KILL {id}")).await?,
    }
    Ok(())
}

/// Sessions on `databases` (of `fleet`'s server) running a statement that contains `text`,
/// as `(database, session id)`, the asker's own left out.
///
/// # Errors
/// When the server cannot be read.
pub async fn running(
    fleet: &Fleet,
    databases: &[String],
    text: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let list = crate::fixture::sql_list(databases);
    let sql = match fleet.dialect {
        DialectKind::Postgres => format!(
            "SELECT CAST(datname AS TEXT), CAST(pid AS TEXT) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND datname IN ({list}) AND query LIKE '%{text}%'"
        ),
        _ => format!(
            "SELECT CAST(db AS CHAR), CAST(id AS CHAR) FROM information_schema.PROCESSLIST \
             WHERE id <> CONNECTION_ID() AND db IN ({list}) AND info LIKE '%{text}%'"
        ),
    };
    let mut conn = fleet.connect(0).await?;
    let rows = sqlx::query(&sql).fetch_all(&mut conn).await?;
    let _ = sqlx::Connection::close(conn).await;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Polls [`running`] until at least `n` sessions run `text` on `databases`, for at most
/// 30 s; returns them.
///
/// # Errors
/// When they do not within 30 s.
pub async fn wait_running(
    fleet: &Fleet,
    databases: &[String],
    text: &str,
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = running(fleet, databases, text).await?;
        if found.len() >= n {
            return Ok(found);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{} of {n} sessions ran {text:?} within 30 s",
            found.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Checks that the control store agrees with the tenants: in `run`, a rollout of every
/// tenant of `fleet` to the latest version read back from the store (`Watch` from 0), each
/// tenant's last `TenantFinished` succeeded and names as its current version the tenant's
/// highest applied version. Returns how many tenants agreed.
///
/// # Errors
/// A sentence naming the tenant that disagrees.
pub async fn agrees(fleet: &Fleet, run: &RolloutRecord) -> anyhow::Result<usize> {
    for i in 0..fleet.tenants.len() {
        let id = &fleet.tenants[i].id;
        let last = run
            .tenants()
            .filter(|t| &t.tenant == id)
            .last()
            .with_context(|| format!("{id}: no TenantFinished in the control store"))?;
        ensure!(
            last.outcome == pb::TenantOutcome::Succeeded as i32,
            "{id}: the control store says {last:?}"
        );
        let applied = ints(
            fleet,
            i,
            "SELECT version FROM avocet_migrations WHERE status = 'applied'",
        )
        .await?;
        ensure!(
            last.current_version.int() == applied.iter().max().copied(),
            "{id}: the control store says version {:?}, the tenant has {applied:?}",
            last.current_version
        );
    }
    Ok(fleet.tenants.len())
}

/// Sessions connected to tenant `i`'s database other than this check's own.
async fn others_connected(fleet: &Fleet, i: usize) -> anyhow::Result<i64> {
    let sql = match fleet.dialect {
        DialectKind::Postgres => {
            "SELECT CAST(COUNT(*) AS TEXT) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()"
        }
        DialectKind::Mysql => {
            "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
        }
        DialectKind::Sqlite => return Ok(0),
    };
    Ok(fleet.scalar(i, sql).await?.context("a count")?.parse()?)
}
