//! Issue 24, item 10: past `shutdown_grace` nothing goes on committing after the daemon has
//! exited. A real `avocetd` is SIGTERMed during a `pg_sleep(8)` migration with a 1 s grace:
//! at the end of the grace it cancels the statement on the server and waits for it, so
//! when it has exited no backend still runs it, the tenant's history has no row for it
//! (and none appears later), and the stored summary of the interrupted rollout counts the
//! migration that did run. A resume then runs the cancelled one. On MariaDB (`KILL QUERY`,
//! statement by statement) the row says how far the migration got, and nothing runs after.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Control, RolloutRecord};
use avocet_tests::{
    ConfigFile, Daemon, Fleet, MigrationCopy, free_port, invariants, pb, start_detached,
};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// Sessions of the tenant's server running the slow statement now.
async fn sleeping(fleet: &Fleet) -> anyhow::Result<usize> {
    Ok(invariants::running(fleet, fleet.databases(), "sleep(8)")
        .await?
        .len())
}

/// A daemon on `fleet` with a 1 s grace over a set whose second migration is `slow`,
/// SIGTERMed while that migration sleeps; returns its configuration, port, the rollout's
/// id and when the signal was sent. Fails unless the daemon exits 0 within 6 s.
async fn sigterm_mid_sleep(
    fleet: &Fleet,
    slow: &str,
    dir: &std::path::Path,
    set: &MigrationCopy,
) -> anyhow::Result<(std::path::PathBuf, u16, String, Instant)> {
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write("0002_slow.up.sql", slow)?;
    let port = free_port()?;
    let config = ConfigFile {
        port,
        shutdown_grace: "1s",
        ..ConfigFile::default()
    }
    .write(dir, fleet, set.path())?;
    let mut daemon = Daemon::start(AVOCETD, &config, port).await?;
    let mut client = daemon.client().await?;
    let id = start_detached(&mut client).await?;
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping(fleet).await? == 0 {
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
    // Cancelled on the server before the daemon exited.
    ensure!(sleeping(fleet).await? == 0, "the statement still runs");
    Ok((config, port, id, started))
}

/// Sleeps until 9 s after `started`: past the end the slow statement would have had.
async fn past_the_sleep(started: Instant) {
    let end = Duration::from_secs(9);
    tokio::time::sleep(end.saturating_sub(started.elapsed())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_past_the_grace_cancels_the_migration_on_the_server() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    let dir = tempfile::tempdir()?;
    let slow = "SELECT pg_sleep(8);\nCREATE TABLE slow (x int);";
    let (config, port, id, started) = sigterm_mid_sleep(&fleet, slow, dir.path(), &set).await?;
    // Rolled back: no row.
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
    past_the_sleep(started).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_past_the_grace_kills_the_query_on_mariadb() -> anyhow::Result<()> {
    let fleet = Fleet::mysql(1).await?;
    let set = MigrationCopy::empty()?;
    let dir = tempfile::tempdir()?;
    // MariaDB runs it statement by statement; `KILL QUERY` fails the sleep, and no
    // statement starts after the cancel: the row says `failed`, none of its 2 done.
    let slow = "SELECT SLEEP(8);\nCREATE TABLE slow (x int);";
    let (config, port, id, started) = sigterm_mid_sleep(&fleet, slow, dir.path(), &set).await?;
    let history = fleet.history(0).await?;
    ensure!(
        history == [(1, "applied".into(), 1), (2, "failed".into(), 0)],
        "{history:?}"
    );
    past_the_sleep(started).await;
    ensure!(
        fleet.history(0).await? == history,
        "the history moved later"
    );
    ensure!(!fleet.objects(0, "table").await?.contains("slow"));
    let daemon = Daemon::start(AVOCETD, &config, port).await?;
    let got = daemon.client().await?.rollout(&id).await?;
    ensure!(
        got.state == pb::RolloutState::Interrupted as i32
            && got.migrations_run == 1
            && got.failed == 1,
        "{got:?}"
    );
    Ok(())
}
