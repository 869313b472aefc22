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

use crate::{Fleet, MigrationCopy};

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
        let effects = match fleet.dialect {
            DialectKind::Mysql => "SELECT CAST(version AS SIGNED) FROM effects",
            _ => "SELECT CAST(version AS BIGINT) FROM effects",
        };
        let effects = ints(fleet, i, effects).await?;
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
            let sessions = others_connected(fleet, i).await?;
            ensure!(sessions == 0, "{id}: {sessions} session(s) left connected");
        }
        checked.tenants += 1;
        checked.migrations += applied.len();
    }
    Ok(checked)
}

/// True when no session holds the tenant's lock: no advisory lock in the tenant's
/// PostgreSQL database, `IS_USED_LOCK` of its MySQL lock name NULL (SQLite: a file lock the
/// process drops with its descriptor).
async fn lock_free(fleet: &Fleet, i: usize) -> anyhow::Result<bool> {
    let sql = match fleet.dialect {
        DialectKind::Postgres => {
            "SELECT CAST(COUNT(*) AS TEXT) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                .to_owned()
        }
        DialectKind::Mysql => "SELECT CAST(COUNT(IS_USED_LOCK(CONCAT('avocet:', DATABASE(), \
             '.avocet_migrations'))) AS CHAR)"
            .to_owned(),
        DialectKind::Sqlite => return Ok(true),
    };
    let n = fleet.scalar(i, &sql).await?.context("a count")?;
    Ok(n == "0")
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
