//! DESIGN.md rule 7, on real servers: a migration never queues a tenant's traffic. A session
//! holds `BEGIN; SELECT count(*) FROM accounts` open while a reader runs
//! `SELECT max(balance) FROM accounts` every 100 ms and `avocet apply` adds a column to
//! `accounts`. Unguarded, every read queued behind the `ALTER` until the blocker ended (6.5 s
//! on an 8 s blocker, PostgreSQL and MariaDB alike); with the default guard (500 ms, whole
//! seconds on MariaDB) the `ALTER` gives up, leaves the lock queue and is retried, so the
//! reader's worst wait stays under 1.5 s, and the apply succeeds once the blocker ends.
//!
//! And the lock-wait budget: 50 tenants of one server, all blocked, never have more than
//! `max_lock_waiters_per_host` (2) retrying in the server's lock queue at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use avocet_client::RolloutRecord;
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, VersionField, pb, request, scrape};
use sqlx::{Connection, Executor};

/// How long the blocker keeps its transaction open.
const BLOCKER: Duration = Duration::from_secs(4);

/// The lock retries of `run`.
fn retries(run: &RolloutRecord) -> Vec<pb::LockRetry> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::LockRetry(r)) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Runs the scenario on tenant 0 of `fleet` with migration `script` (`mode`: the apply's
/// transaction mode) and checks what the issue asks.
async fn reader_never_waits_long(
    fleet: Fleet,
    script: &str,
    mode: pb::TransactionMode,
) -> anyhow::Result<()> {
    fleet
        .exec(0, "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT)")
        .await?;
    fleet
        .exec(0, "INSERT INTO accounts VALUES (1, 10), (2, 20), (3, 30)")
        .await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_note.up.sql", script)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(30)).await?;

    let mut blocker = fleet.connect(0).await?;
    blocker.execute("BEGIN").await?;
    blocker.execute("SELECT count(*) FROM accounts").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut reader = fleet.connect(0).await?;
    let reading = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let clock = Instant::now();
                reader.execute("SELECT max(balance) FROM accounts").await?;
                worst = worst.max(clock.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(worst)
        })
    };
    let apply = {
        let mut client = daemon.client();
        let req = pb::ApplyRequest {
            transaction: mode as i32,
            ..request()
        };
        tokio::spawn(async move { RolloutRecord::collect(client.apply(req).await?).await })
    };
    tokio::time::sleep(BLOCKER).await;
    blocker.execute("COMMIT").await?;
    let run = apply.await??;
    // Reads after the blocker ended, while the apply finishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let worst = reading.await??;

    let tenant = run.tenants().next().context("a tenant")?;
    ensure!(
        tenant.error.as_ref().is_none_or(|e| e.code.is_empty()),
        "the apply failed: {:?}",
        tenant.error
    );
    ensure!(
        fleet.columns(0, "accounts").await?.contains("note"),
        "the column was not added"
    );
    let retries = retries(&run);
    ensure!(
        worst < Duration::from_millis(1500),
        "the reader waited {worst:?} behind the migration ({} retries)",
        retries.len()
    );
    ensure!(
        !retries.is_empty(),
        "no lock retry while the blocker held the table"
    );
    ensure!(
        retries
            .iter()
            .all(|r| r.version.int() == Some(1) && r.statement == 1),
        "{retries:?}"
    );
    let metrics = scrape(daemon.admin).await?;
    let counted: f64 = metrics
        .samples
        .iter()
        .filter(|s| s.metric == "avocet_ddl_lock_retries_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    ensure!(
        counted as usize == retries.len(),
        "/metrics counted {counted} retries, the events {}",
        retries.len()
    );
    println!(
        "lock guard ({:?}, {mode:?}): reader's worst wait {worst:?}, {} retries",
        fleet.dialect,
        retries.len()
    );
    blocker.close().await?;
    daemon.stop().await
}

const ALTER: &str = "ALTER TABLE accounts ADD COLUMN note VARCHAR(40);\n";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reader_never_queues_behind_a_blocked_alter() -> anyhow::Result<()> {
    let mode = pb::TransactionMode::Migration;
    reader_never_waits_long(Fleet::postgres(1).await?, ALTER, mode).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outside_a_transaction_too() -> anyhow::Result<()> {
    let script = format!("-- avocet:no-transaction\n{ALTER}");
    let mode = pb::TransactionMode::Migration;
    reader_never_waits_long(Fleet::postgres(1).await?, &script, mode).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_in_grouped_mode_too() -> anyhow::Result<()> {
    let mode = pb::TransactionMode::Tenant;
    reader_never_waits_long(Fleet::postgres(1).await?, ALTER, mode).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_reader_never_queues_behind_a_blocked_alter() -> anyhow::Result<()> {
    let mode = pb::TransactionMode::Migration;
    reader_never_waits_long(Fleet::mysql(1).await?, ALTER, mode).await
}

/// 50 schema tenants of one database, each table held by one blocker: once every tenant's
/// first attempt is over (each at most `ddl_lock_timeout` in the queue; timed from the last
/// tenant's `MigrationStarted`, not from the apply's start, so a loaded machine starting
/// them late does not count a late first attempt as a retry), never more than the budget
/// (2) of the daemon's sessions wait in `pg_locks` at once; every tenant is migrated once
/// the blocker ends.
#[tokio::test(flavor = "multi_thread")]
async fn no_more_than_the_lock_wait_budget_of_one_server_waits_at_once() -> anyhow::Result<()> {
    const TENANTS: usize = 50;
    let fleet = Fleet::postgres_schemas(TENANTS).await?;
    let mut setup = fleet.connect(0).await?;
    for i in 0..TENANTS {
        setup
            .execute(
                format!(
                    "CREATE SCHEMA tenant_{i:02}; \
                     CREATE TABLE tenant_{i:02}.accounts (id INT PRIMARY KEY, balance INT)"
                )
                .as_str(),
            )
            .await?;
    }
    let set = MigrationCopy::empty()?;
    set.write("0001_note.up.sql", ALTER)?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(60))?;
    config
        .fleets
        .get_mut(avocet_tests::FLEET)
        .context("fleet")?
        .concurrency = TENANTS;
    // Every tenant gets a session at once, so every first attempt starts together.
    config.max_connections = 2 * TENANTS;
    config.max_connections_per_host = TENANTS + 4;
    let daemon = TestDaemon::start_with(config).await?;

    setup.execute("BEGIN").await?;
    for i in 0..TENANTS {
        setup
            .execute(format!("SELECT count(*) FROM tenant_{i:02}.accounts").as_str())
            .await?;
    }
    let db = fleet.databases()[0].clone();
    let mut watcher = fleet.connect(0).await?;
    let waiting = format!(
        "SELECT CAST(count(*) AS BIGINT) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE NOT l.granted AND l.locktype = 'relation' AND a.datname = '{db}' \
         AND a.application_name = 'avocetd'"
    );
    // Every tenant's first attempt has started once each has sent its MigrationStarted; it
    // ends within ddl_lock_timeout (500 ms) of its ALTER reaching the server. From 1.5 s after
    // the last of them only retries wait, within the budget. (A fixed time from the apply's
    // start counted first attempts a loaded machine started late as retries.)
    let started_all = Arc::new(AtomicBool::new(false));
    let apply = {
        let mut client = daemon.client();
        let started_all = started_all.clone();
        tokio::spawn(async move {
            let mut events = client.apply(request()).await?;
            let (mut all, mut started) = (Vec::new(), std::collections::HashSet::new());
            while let Some(e) = events.message().await? {
                if let Some(pb::rollout_event::Kind::MigrationStarted(m)) = &e.kind {
                    started.insert(m.tenant.clone());
                    if started.len() == TENANTS {
                        started_all.store(true, Ordering::SeqCst);
                    }
                }
                all.push(e);
            }
            Ok::<_, avocet_client::ClientError>(RolloutRecord { events: all })
        })
    };
    let started = Instant::now();
    let mut burst_over: Option<Instant> = None;
    let (mut most, mut most_after_burst, mut samples) = (0i64, 0i64, 0);
    // Sample while the blocker holds: until 3 s past the first attempts (at most 60 s).
    while burst_over.is_none_or(|at| at.elapsed() < Duration::from_secs(3)) {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "not every tenant started its migration within 60 s"
        );
        if burst_over.is_none() && started_all.load(Ordering::SeqCst) {
            burst_over = Some(Instant::now() + Duration::from_millis(1500));
        }
        let n: i64 = sqlx::query_scalar(&waiting).fetch_one(&mut watcher).await?;
        most = most.max(n);
        if burst_over.is_some_and(|at| Instant::now() >= at) {
            most_after_burst = most_after_burst.max(n);
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    setup.execute("COMMIT").await?;
    let run = apply.await??;
    let failed: Vec<_> = run
        .tenants()
        .filter(|t| t.error.as_ref().is_some_and(|e| !e.code.is_empty()))
        .map(|t| t.tenant.clone())
        .collect();
    ensure!(failed.is_empty(), "failed: {failed:?}");
    ensure!(
        most > 0,
        "no session was ever seen waiting: the test saw nothing"
    );
    ensure!(
        most_after_burst <= 2,
        "{most_after_burst} sessions waited at once past the first attempts (budget 2)"
    );
    println!(
        "lock-wait budget: {TENANTS} tenants, {most} waiting at most in the first attempts, \
         {most_after_burst} at most after ({samples} samples), {} retries",
        retries(&run).len()
    );
    daemon.stop().await
}

/// `-- avocet:statement-timeout` bounds each statement of its file: a statement that runs
/// longer fails its migration, which is recorded `failed` with the server's reason.
async fn statement_timeout_ends_a_long_statement(fleet: Fleet, sleep: &str) -> anyhow::Result<()> {
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_slow.up.sql",
        &format!("-- avocet:statement-timeout 1s\n{sleep};\n"),
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(30)).await?;
    let clock = Instant::now();
    let run = daemon.apply(request()).await?;
    let took = clock.elapsed();
    let tenant = run.tenants().next().context("a tenant")?;
    let error = tenant
        .error
        .as_ref()
        .context("the slow statement succeeded")?;
    ensure!(error.code == "migration_failed", "{error:?}");
    ensure!(
        took < Duration::from_secs(4),
        "the statement ran {took:?} (limit 1 s)"
    );
    let history = fleet.history(0).await?;
    ensure!(
        history.iter().any(|(v, s, _)| *v == 1 && s == "failed"),
        "{history:?}"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_statement_timeout_from_the_file() -> anyhow::Result<()> {
    statement_timeout_ends_a_long_statement(Fleet::postgres(1).await?, "SELECT pg_sleep(6)").await
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_statement_timeout_from_the_file() -> anyhow::Result<()> {
    statement_timeout_ends_a_long_statement(Fleet::mysql(1).await?, "SELECT SLEEP(6)").await
}
