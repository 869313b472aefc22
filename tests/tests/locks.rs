//! Locks that notice when they are lost, and one lock identity per history table.
//!
//! The tenant lock's session is ended on the server in the middle of a slow migration
//! (`pg_terminate_backend`, MariaDB's `KILL`), or a script releases the lock itself: the
//! tenant fails with `lock_lost`, nothing of the migration runs past that point, the other
//! tenants finish, and a retry (after the documented repair where a non-transactional
//! migration had started) applies every migration exactly once.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::RolloutRecord;
use avocet_daemon::{DialectKind, Target, TenantLock};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, pb, request};

/// Polls `sql` on tenant 0 until it returns a value, for at most 20 s.
async fn wait_for_value(fleet: &Fleet, sql: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = fleet.scalar(0, sql).await? {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "never saw a value for: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tenant `id`'s failure code in a finished rollout, or `None` when it succeeded.
fn failure_code(run: &RolloutRecord, id: &str) -> anyhow::Result<Option<String>> {
    let t = run
        .tenant(id)
        .with_context(|| format!("{id} did not finish"))?;
    Ok(t.error.as_ref().map(|e| e.code.clone()))
}

/// t00 failed with `lock_lost` and t01, whose lock nobody touched, finished.
fn only_t00_lost_its_lock(run: &RolloutRecord) -> anyhow::Result<()> {
    let t00 = failure_code(run, "t00")?;
    ensure!(
        t00.as_deref() == Some("lock_lost"),
        "{:?}",
        run.tenant("t00")
    );
    ensure!(
        failure_code(run, "t01")?.is_none(),
        "{:?}",
        run.tenant("t01")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_lock_session_terminated_mid_migration_is_lock_lost() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write(
        "0002_slow.up.sql",
        "CREATE TABLE b (x int);\nSELECT pg_sleep(3);",
    )?;
    set.write("0003_c.up.sql", "CREATE TABLE c (x int);")?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;

    let mut client = daemon.client();
    let run =
        tokio::spawn(async move { RolloutRecord::collect(client.apply(request()).await?).await });
    // The session that holds t00's lock is the one running its migrations.
    let db = &fleet.databases()[0];
    let pid = wait_for_value(
        &fleet,
        &format!(
            "SELECT pid::text FROM pg_stat_activity WHERE datname = '{db}' \
             AND application_name = 'avocetd' AND query LIKE '%pg_sleep(3)%'"
        ),
    )
    .await?;
    fleet
        .scalar(0, &format!("SELECT pg_terminate_backend({pid})::text"))
        .await?;
    let run = run.await??;

    only_t00_lost_its_lock(&run)?;
    let tables = fleet.objects(0, "BASE TABLE").await?;
    ensure!(tables.contains("a") && !tables.contains("b"), "{tables:?}");
    let history = fleet.history(0).await?;
    ensure!(history == [(1, "applied".into(), 1)], "{history:?}");
    let locks = fleet
        .scalar(
            0,
            &format!(
                "SELECT COUNT(*)::text FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND d.datname = '{db}'"
            ),
        )
        .await?;
    ensure!(
        locks.as_deref() == Some("0"),
        "advisory locks left: {locks:?}"
    );

    let retry = daemon.apply_all().await?;
    ensure!(
        failure_code(&retry, "t00")?.is_none(),
        "{:?}",
        retry.tenant("t00")
    );
    for v in 1..=3 {
        ensure!(fleet.log_count(0, v, "applied").await? == 1, "version {v}");
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
/// A script that frees every advisory lock of its session (the tenant lock included) does
/// not commit, and the session that lost its lock is closed, not pooled.
async fn postgres_lock_released_by_a_script_stops_the_commit() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_unlocks.up.sql",
        "CREATE TABLE a (x int);\nSELECT pg_advisory_unlock_all();",
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    let t0 = run.tenant("t00").context("t00")?;
    let e = t0
        .error
        .as_ref()
        .context("t00 succeeded without its lock")?;
    ensure!(e.code == "lock_lost", "{e:?}");
    ensure!(e.message.contains("pg_advisory_lock("), "{e:?}");
    ensure!(
        !fleet.objects(0, "BASE TABLE").await?.contains("a"),
        "the migration committed without the lock"
    );
    ensure!(fleet.history(0).await?.is_empty());
    ensure!(
        fleet.server_sessions().await? == 0,
        "a session that lost its lock went back to the pool"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_lock_session_killed_mid_migration_is_lock_lost() -> anyhow::Result<()> {
    let fleet = Fleet::mysql(2).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write(
        "0002_slow.up.sql",
        "SELECT SLEEP(2);\nCREATE TABLE b (x int);",
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;

    let mut client = daemon.client();
    let run =
        tokio::spawn(async move { RolloutRecord::collect(client.apply(request()).await?).await });
    let db = &fleet.databases()[0];
    wait_for_value(
        &fleet,
        &format!(
            "SELECT CAST(id AS CHAR) FROM information_schema.processlist \
             WHERE db = '{db}' AND info LIKE '%SLEEP(2)%' AND info NOT LIKE '%processlist%'"
        ),
    )
    .await?;
    let holder = fleet
        .scalar(
            0,
            &format!("SELECT CAST(IS_USED_LOCK('avocet:{db}.avocet_migrations') AS CHAR)"),
        )
        .await?
        .context("nobody holds the tenant lock")?;
    fleet.exec(0, &format!("KILL {holder}")).await?;
    let run = run.await??;

    only_t00_lost_its_lock(&run)?;
    ensure!(
        !fleet.objects(0, "BASE TABLE").await?.contains("b"),
        "a statement ran after the lock was lost"
    );
    let history = fleet.history(0).await?;
    ensure!(
        history == [(1, "applied".into(), 1), (2, "failed".into(), 1)],
        "{history:?}"
    );

    // The first statement ran: the record waits for an operator, who marks it rolled back
    // (a SELECT left nothing), and the retry runs the whole migration once.
    let repair = pb::RepairRequest {
        fleet: FLEET.into(),
        tenant: "t00".into(),
        version: Some(2.into()),
        action: pb::RepairAction::MarkRolledBack as i32,
        ..Default::default()
    };
    daemon.client().repair(repair).await?;
    let retry = daemon.apply_all().await?;
    ensure!(
        failure_code(&retry, "t00")?.is_none(),
        "{:?}",
        retry.tenant("t00")
    );
    ensure!(fleet.objects(0, "BASE TABLE").await?.contains("b"));
    ensure!(fleet.log_count(0, 2, "applied").await? == 1);
    daemon.stop().await
}

/// A fleet that reaches its tenant's schema through `session_init` takes the same lock as a
/// schema-per-tenant configuration of that schema: the lock key comes from the schema the
/// session resolves, not from a bare connection's.
#[tokio::test(flavor = "multi_thread")]
async fn two_configurations_of_one_history_table_take_one_lock() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    fleet.exec(0, "CREATE SCHEMA app").await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_millis(600))?;
    config.fleets.get_mut(FLEET).context("fleet")?.session_init =
        vec!["SET search_path TO app".into()];
    let daemon = TestDaemon::start_with(config).await?;

    let held = TenantLock::acquire(
        DialectKind::Postgres,
        Target {
            dsn: fleet.tenants[0].dsn.clone(),
            schema: Some("app".into()),
            history_table: "avocet_migrations".into(),
            session_init: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            text_versions: false,
        },
        Duration::from_secs(5),
    )
    .await?;
    let run = daemon.apply_all().await?;
    ensure!(
        failure_code(&run, "t00")?.as_deref() == Some("lock_timeout"),
        "{:?}",
        run.tenant("t00")
    );
    held.release().await?;
    let run = daemon.apply_all().await?;
    ensure!(
        failure_code(&run, "t00")?.is_none(),
        "{:?}",
        run.tenant("t00")
    );
    let in_app = fleet
        .scalar(
            0,
            "SELECT table_schema::text FROM information_schema.tables \
             WHERE table_name = 'avocet_migrations'",
        )
        .await?;
    ensure!(in_app.as_deref() == Some("app"), "{in_app:?}");
    daemon.stop().await
}

/// A server that closes idle sessions sooner than a migration takes (`wait_timeout`, here
/// 2 s through `session_init`) does not take the tenant lock away: the lock's session, idle
/// while the migration runs on another, keeps itself open for the migration's length.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_lock_session_outlives_a_short_wait_timeout() -> anyhow::Result<()> {
    let fleet = Fleet::mysql(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write(
        "0002_slow.up.sql",
        "SELECT SLEEP(4);\nCREATE TABLE b (x int);",
    )?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    config.fleets.get_mut(FLEET).context("fleet")?.session_init =
        vec!["SET SESSION wait_timeout = 2".into()];
    let daemon = TestDaemon::start_with(config).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        failure_code(&run, "t00")?.is_none(),
        "{:?}",
        run.tenant("t00")
    );
    ensure!(fleet.objects(0, "BASE TABLE").await?.contains("b"));
    let history = fleet.history(0).await?;
    ensure!(
        history == [(1, "applied".into(), 1), (2, "applied".into(), 2)],
        "{history:?}"
    );
    daemon.stop().await
}
