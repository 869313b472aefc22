//! Faults to the daemons' shared state: one of two replicas SIGKILLed mid-rollout, and the
//! control store's PostgreSQL sessions terminated mid-rollout.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::RolloutRecord;
use avocet_tests::{ConfigFile, Fleet, invariants, pb};

use crate::{Real, counted, events_whole};

/// The lease timeout of the replicas in scenario 9.
const LEASE: Duration = Duration::from_secs(2);

/// 9. Two replicas on one PostgreSQL control store share a rollout over 16 tenants (2 at a
///    time each, a 0.4 s migration in each tenant's set); replica A is SIGKILLed mid-rollout.
///    B finishes the rollout: A's tenants come back to it once their leases (2 s) run out,
///    so the whole rest takes at most the lease plus B's own time for what was left. Every
///    migration ran once, A's cut-off transactions left nothing, and the store's events
///    agree with the tenants.
#[tokio::test(flavor = "multi_thread")]
async fn one_of_two_replicas_sigkilled_the_other_finishes_within_the_lease() -> anyhow::Result<()> {
    let (fleet, set, dir) = counted(Fleet::postgres(16).await?, Some(0.4)).await?;
    let control = Fleet::postgres(1).await?;
    let lease = format!("lease_timeout = \"{}ms\"", LEASE.as_millis());
    let mut replicas = Vec::new();
    for name in ["replica-a", "replica-b"] {
        let instance = format!("instance_id = \"{name}\"");
        let file = ConfigFile {
            name,
            store: Some(&control.tenants[0].dsn),
            concurrency: 2,
            settings: &[&instance, &lease],
            ..ConfigFile::default()
        };
        replicas.push(Real::new(&dir, &fleet, &set, file)?.start().await?);
    }
    let b = replicas.pop().context("b")?;
    let mut a = replicas.pop().context("a")?;
    let mut on_b = b.client().await?;
    let id = avocet_tests::start_detached(&mut a.client().await?).await?;
    avocet_tests::wait_for(&mut on_b, &id, 4).await?;
    // A is in the middle of its tenants' slow migration.
    invariants::wait_running(&fleet, fleet.databases(), "pg_sleep(", 3).await?;
    a.signal("KILL")?;
    a.child.wait().await?;
    let killed = Instant::now();
    let left = 16 - on_b.rollout(&id).await?.succeeded;

    let rest = tokio::time::timeout(
        Duration::from_secs(60),
        RolloutRecord::collect(on_b.watch(&id, 0).await?),
    )
    .await
    .context("the surviving replica did not finish the rollout")??;
    let took = killed.elapsed();
    let finished = rest.finished().context("no RolloutFinished")?.clone();
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32 && finished.succeeded == 16,
        "{finished:?}"
    );
    // The lease, then B alone on what was left, 2 at a time, each tenant about 0.5 s; with
    // twice that for a loaded machine.
    let alone = Duration::from_millis(500) * left.div_ceil(2);
    let bound = LEASE + alone * 2 + Duration::from_secs(2);
    ensure!(
        took < bound,
        "finished {took:?} after the kill ({left} tenants left; bound {bound:?})"
    );
    // Who applied versions 1 and 3 of each tenant: at least one tenant A was in the middle
    // of went to B.
    let mut by = std::collections::BTreeMap::new();
    for i in 0..fleet.tenants.len() {
        let who = fleet
            .scalar(
                i,
                "SELECT CONCAT(MIN(CASE WHEN version = 1 THEN applied_by END), ' then ', \
                 MIN(CASE WHEN version = 3 THEN applied_by END)) FROM avocet_migrations",
            )
            .await?
            .unwrap_or_default();
        *by.entry(who).or_insert(0) += 1;
    }
    ensure!(
        by.contains_key("replica-a then replica-b"),
        "no tenant of A's was taken over: {by:?}"
    );
    println!(
        "faults: replica A SIGKILLed with {left} of 16 tenants left; B finished {took:?} later \
         (lease {LEASE:?}, bound {bound:?}); versions 1 and 3 applied by {by:?}"
    );
    crate::whole_stop_and_check(b, &fleet, (&id, 0), 48, "one of two replicas SIGKILLed", 1).await
}

/// 10. The control store's PostgreSQL connections are terminated mid-rollout: the daemon
///     reconnects, the rollout finishes (or is resumable), and no event is lost.
#[tokio::test(flavor = "multi_thread")]
async fn control_store_connections_terminated_mid_rollout() -> anyhow::Result<()> {
    let (fleet, set, dir) = counted(Fleet::postgres(16).await?, Some(0.5)).await?;
    let store_db = Fleet::postgres(1).await?;
    let file = ConfigFile {
        store: Some(&store_db.tenants[0].dsn),
        ..ConfigFile::default()
    };
    let daemon = Real::new(&dir, &fleet, &set, file)?.start().await?;
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
    let finished = events_whole(&mut client, &id)
        .await?
        .finished()
        .context("no RolloutFinished")?
        .clone();
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32,
        "{finished:?}"
    );
    println!(
        "faults: control store cut ({} session(s)), rollout then {:?}",
        killed.unwrap_or_default(),
        pb::RolloutState::try_from(state)
    );
    crate::whole_stop_and_check(
        daemon,
        &fleet,
        (&id, 0),
        48,
        "control store connections terminated",
        1,
    )
    .await
}
