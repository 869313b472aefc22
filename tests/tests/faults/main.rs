//! The fault suite (issue 12), first scenarios: a fault is injected with a real mechanism
//! (`pg_terminate_backend`, a refused port, a listener that never answers, a lock held by a
//! foreign session, a statement failing part-way through a MariaDB migration), then every
//! tenant is checked with [`invariants::check`]: history agrees with the schema, no
//! migration ran twice, no lock or `running` record left, no session left once the daemon
//! stopped. A retry (after the documented repair where one is needed) finishes the job.
//! Each scenario prints a `faults:` line with its figures.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Client, RolloutRecord};
use avocet_daemon::{DialectKind, TenantConfig};
use avocet_tests::{FLEET, Fleet, TestDaemon, invariants, pb, request};
use sha2::{Digest, Sha256};

/// The failure of tenant `id` in `run`: its error code and message, or `None` if it succeeded.
fn failure(run: &RolloutRecord, id: &str) -> anyhow::Result<Option<(String, String)>> {
    let t = run
        .tenants()
        .find(|t| t.tenant == id)
        .with_context(|| format!("no TenantFinished for {id}"))?;
    Ok(t.error
        .as_ref()
        .filter(|e| !e.code.is_empty())
        .map(|e| (e.code.clone(), e.message.clone())))
}

fn report(scenario: &str, checked: invariants::Checked, faults: usize) {
    println!(
        "faults: {scenario}: {} tenants checked, {} migrations checked, {faults} fault(s) \
         injected, 0 lost",
        checked.tenants, checked.migrations
    );
}

/// The end of a scenario: an apply of every tenant succeeds, the daemon stops, and every
/// tenant passes the invariants with `migrations` applied migrations in all; prints the
/// scenario's figures.
async fn retry_stop_and_check(
    daemon: TestDaemon,
    fleet: &Fleet,
    migrations: usize,
    scenario: &str,
    faults: usize,
) -> anyhow::Result<()> {
    let retry = daemon.apply_all().await?;
    ensure!(
        retry.finished().context("finished")?.failed == 0,
        "{retry:?}"
    );
    daemon.stop().await?;
    let checked = invariants::check(fleet, true).await?;
    ensure!(checked.migrations == migrations, "{checked:?}");
    report(scenario, checked, faults);
    Ok(())
}

/// Polls tenant 0 until a session other than the poller's runs a statement containing
/// `text`; returns its backend pid.
async fn backend_running(fleet: &Fleet, text: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = format!(
        "SELECT CAST(pid AS TEXT) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND query LIKE '%{text}%' LIMIT 1"
    );
    loop {
        if let Some(pid) = fleet.scalar(0, &sql).await? {
            return Ok(pid);
        }
        ensure!(
            Instant::now() < deadline,
            "no session ran {text:?} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    let pid = backend_running(&fleet, "pg_sleep").await?;
    fleet
        .exec(1, &format!("SELECT pg_terminate_backend({pid})"))
        .await?;
    let run = run.await??;
    let (code, message) = failure(&run, "t00")?.context("t00 should have failed")?;
    // The server's own words for the cause, not a later write on the dead session.
    ensure!(
        message.contains("terminating connection"),
        "{code}: {message}"
    );
    println!("faults: terminated t00 failed with {code}: {message}");
    for id in ["t01", "t02", "t03"] {
        ensure!(
            failure(&run, id)?.is_none(),
            "{id}: {:?}",
            failure(&run, id)?
        );
    }
    let history = fleet.history(0).await?;
    ensure!(
        !history.iter().any(|h| h.0 == 2 && h.1 == "applied"),
        "t00 kept version 2: {history:?}"
    );
    invariants::check(&fleet, false).await?;

    retry_stop_and_check(daemon, &fleet, 12, "migrating connection terminated", 1).await
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
    ensure!(failure(&run, "t01")?.is_none());
    let effects = fleet
        .scalar(0, "SELECT CAST(COUNT(*) AS TEXT) FROM effects")
        .await?;
    ensure!(
        effects.as_deref() == Some("0"),
        "t00 ran something: {effects:?}"
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
    ensure!(failure(&run, "t01")?.is_none());
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
            version: 2,
            action: pb::RepairAction::MarkRolledBack as i32,
        })
        .await?;
    retry_stop_and_check(daemon, &fleet, 6, "mariadb partial migration", 1).await
}

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// Every event of rollout `id` from the first: numbered 1..n without a gap, one
/// `TenantFinished` per tenant that finished, and the `RolloutFinished` last.
async fn events_whole(client: &mut Client, id: &str) -> anyhow::Result<RolloutRecord> {
    let all = RolloutRecord::collect(client.watch(id, 0).await?).await?;
    let seqs: Vec<u64> = all.events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    ensure!(seqs == expected, "event numbers {seqs:?}");
    let mut seen = std::collections::BTreeSet::new();
    for t in all.tenants() {
        ensure!(seen.insert(t.tenant.clone()), "{} finished twice", t.tenant);
    }
    Ok(all)
}

/// Polls the invariants for up to 10 s after a process died: the server notices its
/// closed sockets (and frees their locks) a moment later.
async fn settled(fleet: &Fleet, stopped: bool) -> anyhow::Result<invariants::Checked> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match invariants::check(fleet, stopped).await {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// 1. `avocetd` SIGKILLed mid-rollout over 100 PostgreSQL tenants whose set has a slow
///    migration; restarted, the rollout is `interrupted`, a resume finishes it, and every
///    migration ran exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_rollout_over_a_hundred_tenants_then_resume() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(100).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Postgres, 3, Some(0.3))?;
    let dir = tempfile::tempdir()?;
    let port = avocet_tests::free_port()?;
    let config = avocet_tests::write_config(dir.path(), port, &fleet, set.path(), None, 8)?;
    let mut daemon = avocet_tests::Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let id = avocet_tests::start_detached(&mut client).await?;
    avocet_tests::wait_for(&mut client, &id, 20).await?;
    daemon.signal("KILL")?;
    daemon.child.wait().await?;
    // Whatever the kill cut off is consistent already.
    let cut = settled(&fleet, true).await?;

    let mut daemon = avocet_tests::Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let got = client.rollout(&id).await?;
    ensure!(got.state == pb::RolloutState::Interrupted as i32, "{got:?}");
    client.control(&id, avocet_client::Control::Resume).await?;
    let rest = RolloutRecord::collect(client.watch(&id, got.last_seq).await?).await?;
    let finished = rest
        .finished()
        .context("the resumed rollout did not finish")?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32,
        "{finished:?}"
    );
    events_whole(&mut client, &id).await?;
    daemon.signal("TERM")?;
    daemon.child.wait().await?;
    let checked = settled(&fleet, true).await?;
    ensure!(checked.migrations == 300, "{checked:?}");
    println!(
        "faults: SIGKILL with {} of 300 migrations done, resumed",
        cut.migrations
    );
    report("SIGKILL mid-rollout, 100 tenants", checked, 1);
    Ok(())
}

/// 10. The control store's PostgreSQL connections are terminated mid-rollout: the daemon
///     reconnects, the rollout finishes (or is resumable), and no event is lost.
#[tokio::test(flavor = "multi_thread")]
async fn control_store_connections_terminated_mid_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(16).await?;
    invariants::prepare(&fleet).await?;
    let store_db = Fleet::postgres(1).await?;
    let set = invariants::counted_set(DialectKind::Postgres, 3, Some(0.5))?;
    let dir = tempfile::tempdir()?;
    let port = avocet_tests::free_port()?;
    let store = Some(store_db.tenants[0].dsn.as_str());
    let config = avocet_tests::write_config(dir.path(), port, &fleet, set.path(), store, 8)?;
    let mut daemon = avocet_tests::Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let id = avocet_tests::start_detached(&mut client).await?;
    avocet_tests::wait_for(&mut client, &id, 4).await?;
    let killed = store_db
        .scalar(
            0,
            "SELECT CAST(COUNT(pg_terminate_backend(pid)) AS TEXT) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await?;
    ensure!(
        killed.as_deref().is_some_and(|n| n != "0"),
        "no control-store session to terminate: {killed:?}"
    );
    // The rollout ends by itself, or is left resumable.
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        let state = match daemon.client().await?.rollout(&id).await {
            Ok(r) => r.state,
            Err(_) => pb::RolloutState::Running as i32,
        };
        if state != pb::RolloutState::Running as i32 {
            break state;
        }
        ensure!(Instant::now() < deadline, "the rollout never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut client = daemon.client().await?;
    if state == pb::RolloutState::Interrupted as i32 || state == pb::RolloutState::Failed as i32 {
        let got = client.rollout(&id).await?;
        client.control(&id, avocet_client::Control::Resume).await?;
        RolloutRecord::collect(client.watch(&id, got.last_seq).await?).await?;
    }
    let all = events_whole(&mut client, &id).await?;
    let finished = all.finished().context("no RolloutFinished")?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32,
        "{finished:?}"
    );
    daemon.signal("TERM")?;
    daemon.child.wait().await?;
    let checked = settled(&fleet, true).await?;
    ensure!(checked.migrations == 48, "{checked:?}");
    println!(
        "faults: control store cut ({} session(s)), rollout then {:?}",
        killed.unwrap_or_default(),
        pb::RolloutState::try_from(state)
    );
    report("control store connections terminated", checked, 1);
    Ok(())
}

/// The `q`-quantile of `samples` (sorted in place), nearest rank.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// 11. Load: 32 clients, each on its own connection, call `Plan` (a page of 100 tenants),
///     `Status` (last-known) and `Watch` (to its first event) on a 1,000-tenant fleet while a
///     rollout runs on it: no call fails, and the rollout's result is whole.
#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_clients_read_a_thousand_tenant_fleet_during_a_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1000).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Sqlite, 3, None)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(30)).await?;
    let stream = daemon.client().apply(request()).await?;
    let run = tokio::spawn(RolloutRecord::collect(stream));
    let id = loop {
        let listed = daemon
            .client()
            .list_rollouts(pb::ListRolloutsRequest::default())
            .await?;
        if let Some(r) = listed.rollouts.first() {
            break r.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let (addr, id, done) = (daemon.addr.clone(), id.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut took: [Vec<Duration>; 3] = Default::default();
            // Bounded: at most 20 rounds, and none once the rollout has finished.
            for _ in 0..20 {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let clock = Instant::now();
                c.plan(pb::PlanRequest {
                    fleet: FLEET.into(),
                    page_size: 100,
                    ..Default::default()
                })
                .await?;
                took[0].push(clock.elapsed());
                let clock = Instant::now();
                c.status(pb::StatusRequest {
                    fleet: FLEET.into(),
                    ..Default::default()
                })
                .await?;
                took[1].push(clock.elapsed());
                let clock = Instant::now();
                let mut events = c.watch(&id, 0).await?;
                events.message().await?.context("Watch sent no event")?;
                took[2].push(clock.elapsed());
            }
            anyhow::Ok(took)
        }));
    }
    let run = run.await??;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut took: [Vec<Duration>; 3] = Default::default();
    for c in clients {
        for (all, one) in took.iter_mut().zip(c.await??) {
            all.extend(one);
        }
    }
    let finished = run.finished().context("finished")?;
    ensure!(
        finished.succeeded == 1000 && finished.migrations_run == 3000,
        "{finished:?}"
    );
    ensure!(took.iter().all(|t| !t.is_empty()), "a call kind never ran");
    for (name, samples) in ["Plan", "Status", "Watch"].iter().zip(took.iter_mut()) {
        println!(
            "faults: load: {name}: {} calls, p50 {:?}, p99 {:?}",
            samples.len(),
            quantile(samples, 0.5),
            quantile(samples, 0.99)
        );
    }
    daemon.stop().await?;
    let checked = invariants::check(&fleet, true).await?;
    ensure!(checked.migrations == 3000, "{checked:?}");
    report("32 clients during a rollout", checked, 0);
    Ok(())
}
