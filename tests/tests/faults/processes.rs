//! Faults to a real `avocetd` process: SIGKILL mid-rollout (PostgreSQL and MariaDB), and
//! SIGTERM mid-rollout with and without a client attached.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::RolloutRecord;
use avocet_tests::{ConfigFile, Fleet, invariants, request};

use crate::{Real, counted, resume_to_the_end, settled, whole_stop_and_check};

/// 1. `avocetd` SIGKILLed mid-rollout over 100 PostgreSQL tenants whose set has a slow
///    migration; restarted, the rollout is `interrupted`, a resume finishes it, and every
///    migration ran exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_rollout_over_a_hundred_tenants_then_resume() -> anyhow::Result<()> {
    let (fleet, set, dir) = counted(Fleet::postgres(100).await?, Some(0.3)).await?;
    let real = Real::new(&dir, &fleet, &set, ConfigFile::default())?;
    let mut daemon = real.start().await?;
    let mut client = daemon.client().await?;
    let id = avocet_tests::start_detached(&mut client).await?;
    avocet_tests::wait_for(&mut client, &id, 20).await?;
    daemon.signal("KILL")?;
    daemon.child.wait().await?;
    // Whatever the kill cut off is consistent already.
    let cut = settled(&fleet, true).await?;

    let daemon = real.start().await?;
    resume_to_the_end(&mut daemon.client().await?, &id).await?;
    println!(
        "faults: SIGKILL with {} of 300 migrations done, resumed",
        cut.migrations
    );
    whole_stop_and_check(
        daemon,
        &fleet,
        (&id, 0),
        300,
        "SIGKILL mid-rollout, 100 tenants",
        1,
    )
    .await
}

/// 1, MariaDB. `avocetd` SIGKILLed while 3 of 6 MariaDB tenants sleep in migration 2 of 3
///    (MariaDB DDL auto-commits, so every migration runs statement by statement): each of
///    the three is left with a `running` record of version 2, and the tenant lock is free.
///    Restarted, the rollout is `interrupted`; the documented repair resolves each
///    `running` record after a look at the schema; a resume finishes the rollout, each
///    migration's effect exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sigkill_mid_migration_then_repair_and_resume() -> anyhow::Result<()> {
    let (fleet, set, dir) = counted(Fleet::mysql(6).await?, Some(3.0)).await?;
    let file = ConfigFile {
        concurrency: 3,
        ..ConfigFile::default()
    };
    let real = Real::new(&dir, &fleet, &set, file)?;
    let mut daemon = real.start().await?;
    let id = avocet_tests::start_detached(&mut daemon.client().await?).await?;
    let sleeping = invariants::wait_running(&fleet, fleet.databases(), "sleep(", 3).await?;
    daemon.signal("KILL")?;
    daemon.child.wait().await?;
    let mut running = 0;
    for i in 0..fleet.tenants.len() {
        let history = fleet.history(i).await.unwrap_or_default();
        let cut = sleeping.iter().any(|(db, _)| *db == fleet.databases()[i]);
        ensure!(
            history.contains(&(2, "running".into(), 0)) == cut,
            "{}: {history:?}",
            fleet.tenants[i].id
        );
        running += usize::from(cut);
    }
    // The server frees the lock of the killed daemon's session once it sees it closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..fleet.tenants.len() {
        while invariants::lock_holder(&fleet, i).await?.is_some() {
            ensure!(
                Instant::now() < deadline,
                "a lock outlived the killed daemon"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let daemon = real.start().await?;
    let mut client = daemon.client().await?;
    // A resume before the repair is refused, naming the tenants, and burns nothing: the
    // rollout stays interrupted, resumable once they are repaired.
    let early = client.control(&id, avocet_client::Control::Resume).await;
    let Err(refusal) = early else {
        anyhow::bail!("a resume before the repair was accepted: {early:?}");
    };
    let cut: Vec<&str> = (0..fleet.tenants.len())
        .filter(|&i| sleeping.iter().any(|(db, _)| *db == fleet.databases()[i]))
        .map(|i| fleet.tenants[i].id.as_str())
        .collect();
    let message = refusal.to_string();
    ensure!(
        message.contains("repair") && cut.iter().all(|t| message.contains(t)),
        "the refusal should name {cut:?}: {message}"
    );
    let still = client.rollout(&id).await?;
    ensure!(
        still.state == avocet_client::pb::RolloutState::Interrupted as i32,
        "{still:?}"
    );
    // Blocked until repaired: the plan refuses the tenants with a `running` record.
    let repaired = crate::repair_unfinished(&mut client, &fleet).await?;
    ensure!(
        repaired == running,
        "{repaired} repaired, {running} running"
    );
    resume_to_the_end(&mut client, &id).await?;
    println!("faults: MariaDB SIGKILL left {running} running record(s), repaired, resumed");
    whole_stop_and_check(
        daemon,
        &fleet,
        (&id, 0),
        18,
        "MariaDB SIGKILL mid-migration",
        1,
    )
    .await
}

/// The shutdown grace of the SIGTERM scenarios.
const GRACE: Duration = Duration::from_secs(8);

/// 8. SIGTERM while 4 of 8 PostgreSQL tenants are in a 2 s migration run outside a
///    transaction (a cut-off one would leave `running`), with a client attached to the
///    rollout's stream or not: the four finish that migration within the grace, no tenant
///    starts anything new (no version 3 anywhere, the other four untouched), `avocetd` exits
///    0, no `running` record; restarted, a resume finishes the rollout.
async fn sigterm_mid_rollout(attached: bool) -> anyhow::Result<()> {
    let (fleet, set, dir) = counted(Fleet::postgres(8).await?, None).await?;
    set.write(
        "0002_m2.up.sql",
        "-- avocet:no-transaction\nSELECT pg_sleep(2);\nCREATE TABLE t2 (id int);\n\
         INSERT INTO effects (version) VALUES (2);\n",
    )?;
    let grace = format!("{}s", GRACE.as_secs());
    let file = ConfigFile {
        concurrency: 4,
        shutdown_grace: &grace,
        ..ConfigFile::default()
    };
    let real = Real::new(&dir, &fleet, &set, file)?;
    let mut daemon = real.start().await?;
    let mut client = daemon.client().await?;
    let (id, stream) = if attached {
        let mut events = client.apply(request()).await?;
        let first = events.message().await?.context("no first event")?;
        let rest = tokio::spawn(RolloutRecord::collect(events));
        (first.rollout_id, Some(rest))
    } else {
        let id = avocet_tests::start_detached(&mut client).await?;
        drop(client);
        (id, None)
    };
    let in_flight = invariants::wait_running(&fleet, fleet.databases(), "pg_sleep(", 4).await?;
    let clock = Instant::now();
    daemon.signal("TERM")?;
    let status = tokio::time::timeout(GRACE + Duration::from_secs(5), daemon.child.wait())
        .await
        .context("avocetd did not exit after its grace")??;
    let took = clock.elapsed();
    ensure!(status.success(), "avocetd exited with {status}");
    ensure!(took < GRACE, "exit took {took:?}, the grace is {GRACE:?}");
    if let Some(stream) = stream {
        // At shutdown every stream ends with the daemon's reason, not as if the rollout had
        // ended (it is left `interrupted`, to a resume).
        let ended = stream.await?;
        ensure!(
            ended
                .as_ref()
                .is_err_and(|e| e.to_string().contains("the daemon is shutting down")),
            "the attached stream ended with {ended:?}"
        );
    }
    for i in 0..fleet.tenants.len() {
        let cut = in_flight.iter().any(|(db, _)| *db == fleet.databases()[i]);
        let mut effects = invariants::effects(&fleet, i).await?;
        effects.sort_unstable();
        let expected: &[i64] = if cut { &[1, 2] } else { &[] };
        ensure!(
            effects == expected,
            "{}: {effects:?} after SIGTERM",
            fleet.tenants[i].id
        );
    }
    let cut = settled(&fleet, true).await?;

    let daemon = real.start().await?;
    resume_to_the_end(&mut daemon.client().await?, &id).await?;
    let client = if attached { "attached" } else { "none" };
    println!(
        "faults: SIGTERM (client {client}): exit 0 after {took:?}, {} migrations done, resumed",
        cut.migrations
    );
    let scenario = format!("SIGTERM mid-rollout, client {client}");
    whole_stop_and_check(daemon, &fleet, (&id, in_flight.len()), 24, &scenario, 1).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_rollout_with_a_client_attached() -> anyhow::Result<()> {
    sigterm_mid_rollout(true).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_rollout_with_no_client() -> anyhow::Result<()> {
    sigterm_mid_rollout(false).await
}
