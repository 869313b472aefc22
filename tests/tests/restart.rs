//! Rollouts survive the daemon: a real `avocetd` process is SIGKILLed, or SIGTERMed with no
//! client attached, in the middle of a rollout over PostgreSQL tenants; once restarted it
//! lists the rollout `interrupted`, a resume finishes it, and every tenant's history and
//! schema agree, with no migration run twice and no `running` record left.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Client, Control, RolloutRecord};
use avocet_tests::{
    Daemon, Fleet, MigrationCopy, free_port, pb, scenarios::every_tenant_done, start_detached,
    wait_for, write_config,
};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

async fn resume_to_the_end(client: &mut Client, id: &str) -> anyhow::Result<pb::RolloutFinished> {
    let got = client.rollout(id).await?;
    ensure!(got.state == pb::RolloutState::Interrupted as i32, "{got:?}");
    client.control(id, Control::Resume).await?;
    let rest = RolloutRecord::collect(client.watch(id, got.last_seq).await?).await?;
    rest.finished()
        .cloned()
        .context("the resumed rollout did not finish")
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_rollout_then_resume_runs_nothing_twice() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(20).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write("0002_slow.up.sql", "SELECT pg_sleep(0.4);")?;
    set.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), port, &fleet, set.path(), None, 4)?;
    let mut daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let id = start_detached(&mut client).await?;
    wait_for(&mut client, &id, 4).await?;
    daemon.signal("KILL")?;
    daemon.child.wait().await?;

    let daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let listed = client
        .list_rollouts(pb::ListRolloutsRequest {
            state: pb::RolloutState::Interrupted as i32,
            ..Default::default()
        })
        .await?;
    ensure!(listed.rollouts.iter().any(|r| r.id == id), "{listed:?}");
    let finished = resume_to_the_end(&mut client, &id).await?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32,
        "{finished:?}"
    );
    ensure!(
        finished.succeeded == 20 && finished.failed == 0,
        "{finished:?}"
    );
    every_tenant_done(&fleet, 3, &["a", "b"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_no_client_lets_migrations_finish_and_exits_cleanly() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(8).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    // Outside a transaction: a cut-off daemon would leave `running` rows.
    set.write(
        "0002_slow.up.sql",
        "-- avocet:no-transaction\nSELECT pg_sleep(1.5);\nCREATE TABLE slow (x int);",
    )?;
    set.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), port, &fleet, set.path(), None, 4)?;
    let mut daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let id = start_detached(&mut client).await?;
    drop(client);
    // The first four tenants are in their slow migration.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let clock = Instant::now();
    daemon.signal("TERM")?;
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.child.wait())
        .await
        .context("avocetd did not exit within its grace")??;
    ensure!(status.success(), "avocetd exited with {status}");
    ensure!(
        clock.elapsed() < Duration::from_secs(10),
        "exit took {:?}",
        clock.elapsed()
    );
    for i in 0..fleet.tenants.len() {
        let history = fleet.history(i).await.unwrap_or_default();
        ensure!(
            history.iter().all(|(_, s, _)| s != "running"),
            "tenant {i} left {history:?}"
        );
    }

    let daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let finished = resume_to_the_end(&mut client, &id).await?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32,
        "{finished:?}"
    );
    every_tenant_done(&fleet, 3, &["a", "slow", "b"]).await
}
