//! Issue 24, item 10: past `shutdown_grace` nothing goes on committing after the daemon has
//! exited. A real `avocetd` is SIGTERMed during a `pg_sleep(8)` migration with a 1 s grace:
//! at the end of the grace it cancels the statement on the server and waits for it, so
//! when it has exited no backend still runs it, the tenant's history has no row for it
//! (and none appears later), and the stored summary of the interrupted rollout counts the
//! migration that did run. A resume then runs the cancelled one.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Control, RolloutRecord};
use avocet_tests::{ConfigFile, Daemon, Fleet, MigrationCopy, free_port, pb, start_detached};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// Backends of the tenant's server running the slow statement now.
async fn sleeping(fleet: &Fleet) -> anyhow::Result<i64> {
    let n = fleet
        .scalar(
            0,
            "SELECT CAST(count(*) AS TEXT) FROM pg_stat_activity \
             WHERE query LIKE '%pg_sleep(8)%' AND pid <> pg_backend_pid()",
        )
        .await?
        .unwrap_or_default();
    Ok(n.parse()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_past_the_grace_cancels_the_migration_on_the_server() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write(
        "0002_slow.up.sql",
        "SELECT pg_sleep(8);\nCREATE TABLE slow (x int);",
    )?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = ConfigFile {
        port,
        shutdown_grace: "1s",
        ..ConfigFile::default()
    }
    .write(dir.path(), &fleet, set.path())?;
    let mut daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let id = start_detached(&mut client).await?;
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping(&fleet).await? == 0 {
        ensure!(
            Instant::now() < deadline,
            "the slow migration never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    daemon.signal("TERM")?;
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.child.wait())
        .await
        .context("avocetd did not exit")??;
    let exited = started.elapsed();
    println!("avocetd exited {exited:?} after SIGTERM (grace 1 s)");
    ensure!(status.success(), "avocetd exited with {status}");
    ensure!(
        exited < Duration::from_secs(6),
        "it waited for the migration instead of cancelling it: {exited:?}"
    );
    // Cancelled on the server before the daemon exited, and rolled back.
    ensure!(sleeping(&fleet).await? == 0, "the statement still runs");
    let rows = |h: &[(i64, String, i64)]| h.iter().filter(|r| r.0 == 2).count();
    let history = fleet.history(0).await?;
    ensure!(
        history
            .first()
            .is_some_and(|r| r.0 == 1 && r.1 == "applied"),
        "{history:?}"
    );
    ensure!(rows(&history) == 0, "{history:?}");
    // And nothing of it commits later: past the end the sleep would have had.
    tokio::time::sleep(
        Duration::from_secs(8).saturating_sub(started.elapsed()) + Duration::from_secs(1),
    )
    .await;
    let history = fleet.history(0).await?;
    ensure!(rows(&history) == 0, "a row appeared later: {history:?}");
    ensure!(
        !fleet.objects(0, "table").await?.contains("slow"),
        "the migration committed after the daemon exited"
    );

    // What the store says: interrupted, one migration run, nothing failed.
    let daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let got = client.rollout(&id).await?;
    ensure!(got.state == pb::RolloutState::Interrupted as i32, "{got:?}");
    ensure!(
        got.migrations_run == 1 && got.failed == 0 && got.succeeded == 0,
        "{got:?}"
    );
    let mut stream = client.watch(&id, 0).await?;
    let mut summary = None;
    while let Ok(Ok(Some(event))) =
        tokio::time::timeout(Duration::from_secs(5), stream.message()).await
    {
        if let Some(pb::rollout_event::Kind::RolloutFinished(f)) = event.kind {
            summary = Some(f);
            break;
        }
    }
    drop(stream);
    let summary = summary.context("a RolloutFinished")?;
    ensure!(
        summary.state == pb::RolloutState::Interrupted as i32 && summary.migrations_run == 1,
        "{summary:?}"
    );
    // The tenant runs it again on resume.
    client.control(&id, Control::Resume).await?;
    let rest = RolloutRecord::collect(client.watch(&id, got.last_seq).await?).await?;
    let finished = rest.finished().context("the resumed rollout finished")?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32 && finished.succeeded == 1,
        "{finished:?}"
    );
    let history = fleet.history(0).await?;
    ensure!(
        history
            .iter()
            .filter(|r| r.0 == 2 && r.1 == "applied")
            .count()
            == 1,
        "{history:?}"
    );
    Ok(())
}
