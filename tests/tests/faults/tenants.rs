//! Faults at one tenant, with the daemon in-process: its migrating session or its lock's
//! session ended server-side, its server unreachable, its lock held by a foreign session, a
//! MariaDB migration failing part-way.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Client, RolloutRecord};
use avocet_daemon::{DialectKind, TenantConfig};
use avocet_tests::{FLEET, Fleet, TestDaemon, invariants, pb, request};
use sha2::{Digest, Sha256};

use crate::{failure, others_succeeded, report, retry_stop_and_check};

/// 2. The migrating connection is terminated server-side mid-migration: that tenant fails
///    with the cause and keeps nothing of the transactional migration; the others finish;
///    a retry finishes it.
#[tokio::test(flavor = "multi_thread")]
async fn migrating_connection_terminated_mid_migration() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(4).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Postgres, 3, Some(2.0))?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut client = daemon.client();
    let stream = client.apply(request()).await?;
    let run = tokio::spawn(RolloutRecord::collect(stream));
    let t00 = &fleet.databases()[..1];
    let (_, pid) = invariants::wait_running(&fleet, t00, "pg_sleep", 1)
        .await?
        .remove(0);
    invariants::end_session(&fleet, 1, &pid).await?;
    let run = run.await??;
    let (code, message) = failure(&run, "t00")?.context("t00 should have failed")?;
    // The server's own words for the cause, not a later write on the dead session.
    ensure!(
        message.contains("terminating connection"),
        "{code}: {message}"
    );
    println!("faults: terminated t00 failed with {code}: {message}");
    others_succeeded(&run, &fleet, "t00")?;
    let history = fleet.history(0).await?;
    ensure!(
        !history.iter().any(|h| h.0 == 2 && h.1 == "applied"),
        "t00 kept version 2: {history:?}"
    );
    invariants::check(&fleet, false).await?;

    retry_stop_and_check(daemon, &fleet, 12, "migrating connection terminated", 1).await
}

/// 3. The session holding t00's lock (found through `pg_locks` or `IS_USED_LOCK`) is ended
///    server-side while t00 sleeps in migration 2 of 3: t00 fails with `lock_lost`, nothing
///    runs past that point (no effect row of 2 or 3, no table `t2`), the others finish, and
///    a retry (after the documented repair on MariaDB, where the record is `failed` with the
///    sleep done) applies every migration once.
async fn lock_connection_ended(fleet: Fleet) -> anyhow::Result<()> {
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(fleet.dialect, 3, Some(2.0))?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let stream = daemon.client().apply(request()).await?;
    let run = tokio::spawn(RolloutRecord::collect(stream));
    let t00 = &fleet.databases()[..1];
    let (_, sleeper) = invariants::wait_running(&fleet, t00, "sleep(", 1)
        .await?
        .remove(0);
    let holder = invariants::lock_holder(&fleet, 0)
        .await?
        .context("nobody holds t00's lock mid-migration")?;
    // PostgreSQL: one session holds the lock and runs the tenant's migrations; MySQL: the
    // lock has a session of its own, and each migration another.
    ensure!(
        (holder == sleeper) == (fleet.dialect == DialectKind::Postgres),
        "lock held by {holder}, migration on {sleeper}"
    );
    invariants::end_session(&fleet, 1, &holder).await?;
    let run = run.await??;
    let (code, message) = failure(&run, "t00")?.context("t00 should have failed")?;
    ensure!(code == "lock_lost", "{code}: {message}");
    others_succeeded(&run, &fleet, "t00")?;
    let effects = invariants::effects(&fleet, 0).await?;
    ensure!(effects == [1], "t00's effects: {effects:?}");
    let tables = fleet.objects(0, "BASE TABLE").await?;
    ensure!(
        tables.contains("t1") && !tables.contains("t2") && !tables.contains("t3"),
        "{tables:?}"
    );
    let history = fleet.history(0).await?;
    if fleet.dialect == DialectKind::Mysql {
        // The sleep ran, the lock check before the next statement stopped it.
        ensure!(history.contains(&(2, "failed".into(), 1)), "{history:?}");
        let repaired = crate::repair_unfinished(&mut daemon.client(), &fleet).await?;
        ensure!(repaired == 1, "{repaired} records repaired");
    }
    invariants::check(&fleet, false).await?;
    let scenario = format!("lock's session ended ({})", fleet.dialect);
    retry_stop_and_check(daemon, &fleet, 9, &scenario, 1).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_lock_session_terminated_mid_migration() -> anyhow::Result<()> {
    lock_connection_ended(Fleet::postgres(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_lock_session_killed_mid_migration() -> anyhow::Result<()> {
    lock_connection_ended(Fleet::mysql(3).await?).await
}

/// 4. Unreachable tenants (a refused port, and a listener that accepts and never answers)
///    fail within `connect_timeout` with a clear error; the rest finish.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_tenants_fail_within_connect_timeout() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Postgres, 2, None)?;
    let refused = avocet_tests::free_port()?;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    // Accepts every connection and holds it open without a byte.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    let f = config.fleets.get_mut(FLEET).context("fleet")?;
    f.connect_timeout = Duration::from_secs(2);
    for (id, port) in [("refused", refused), ("silent", silent_port)] {
        f.tenants.push(TenantConfig {
            id: id.into(),
            dsn: format!("postgres://postgres@127.0.0.1:{port}/nothing"),
            ..fleet.tenants[0].clone()
        });
    }
    let daemon = TestDaemon::start_with(config).await?;
    let clock = Instant::now();
    let run = daemon.apply_all().await?;
    let took = clock.elapsed();
    for id in ["refused", "silent"] {
        let (code, message) = failure(&run, id)?.with_context(|| format!("{id} succeeded?"))?;
        ensure!(
            message.contains("127.0.0.1") || message.to_lowercase().contains("connect"),
            "{id}: {code}: {message}"
        );
    }
    // Both connect attempts are bounded by connect_timeout (2 s); a hang would take minutes.
    ensure!(took < Duration::from_secs(20), "the rollout took {took:?}");
    println!("faults: unreachable tenants failed, rollout over in {took:?}");
    for id in ["t00", "t01"] {
        ensure!(
            failure(&run, id)?.is_none(),
            "{id}: {:?}",
            failure(&run, id)?
        );
    }
    daemon.stop().await?;
    holder.abort();
    let checked = invariants::check(&fleet, true).await?;
    ensure!(checked.migrations == 4, "{checked:?}");
    report("unreachable tenants", checked, 2);
    Ok(())
}

/// 5. A foreign session holds the tenant lock: the tenant fails with `lock_timeout` after
///    the configured time and runs nothing; once it lets go, a retry finishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_held_by_a_foreign_session_times_out_and_runs_nothing() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Postgres, 2, None)?;
    // The key docs/architecture.md gives: SHA-256 of (database, schema, history table).
    let db = &fleet.databases()[0];
    let digest = Sha256::digest(format!("avocet\0{db}\0public\0avocet_migrations").as_bytes());
    let key = i64::from_be_bytes(digest[..8].try_into()?);
    let mut holder = fleet.connect(0).await?;
    sqlx::query(&format!("SELECT pg_advisory_lock({key})"))
        .execute(&mut holder)
        .await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(1)).await?;
    let run = daemon.apply_all().await?;
    let (code, _) = failure(&run, "t00")?.context("t00 should have failed")?;
    ensure!(code == "lock_timeout", "{code}");
    others_succeeded(&run, &fleet, "t00")?;
    let effects = fleet
        .scalar(0, "SELECT CAST(COUNT(*) AS TEXT) FROM effects")
        .await?;
    ensure!(
        effects.as_deref() == Some("0"),
        "t00 ran something: {effects:?}"
    );
    // The check sees a held lock: it can fail.
    let held = invariants::check(&fleet, false).await;
    ensure!(
        held.as_ref()
            .is_err_and(|e| e.to_string().contains("lock is still held")),
        "the check missed the foreign lock: {held:?}"
    );
    sqlx::query(&format!("SELECT pg_advisory_unlock({key})"))
        .execute(&mut holder)
        .await?;
    sqlx::Connection::close(holder).await?;
    retry_stop_and_check(daemon, &fleet, 4, "foreign lock holder", 1).await
}

/// 6. MariaDB, whose DDL auto-commits: a migration failing on its third statement is
///    `failed` with `statements_done = 2`; after a manual fix (undo the two, create what
///    the third needs), `repair --mark rolled-back` and a new apply finish.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_migration_failing_on_its_third_statement() -> anyhow::Result<()> {
    let fleet = Fleet::mysql(2).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Mysql, 3, None)?;
    set.write(
        "0002_m2.up.sql",
        "CREATE TABLE t2 (id int);\nCREATE TABLE extra2 (id int);\n\
         INSERT INTO needed (v) VALUES (2);\nINSERT INTO effects (version) VALUES (2);\n",
    )?;
    fleet.exec(1, "CREATE TABLE needed (v int)").await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut client: Client = daemon.client();
    let run = daemon.apply_all().await?;
    let (code, message) = failure(&run, "t00")?.context("t00 should have failed")?;
    ensure!(message.contains("needed"), "{code}: {message}");
    others_succeeded(&run, &fleet, "t00")?;
    let history = fleet.history(0).await?;
    ensure!(
        history.contains(&(2, "failed".into(), 2)),
        "version 2 failed after 2 statements: {history:?}"
    );
    // Blocked until repaired: a retry runs nothing on t00.
    let blocked = daemon.apply_all().await?;
    ensure!(failure(&blocked, "t00")?.is_some(), "{blocked:?}");

    // The documented repair: look at the schema, undo what ran, fix the cause, mark it.
    fleet
        .exec(
            0,
            "DROP TABLE t2; DROP TABLE extra2; CREATE TABLE needed (v int)",
        )
        .await?;
    client
        .repair(pb::RepairRequest {
            fleet: FLEET.into(),
            tenant: "t00".into(),
            version: Some(2.into()),
            action: pb::RepairAction::MarkRolledBack as i32,
            ..Default::default()
        })
        .await?;
    retry_stop_and_check(daemon, &fleet, 6, "mariadb partial migration", 1).await
}
