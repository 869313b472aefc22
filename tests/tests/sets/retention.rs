//! `set_retention`: an untagged published set older than it, pinned by no rollout and
//! followed by no fleet, is deleted by the daemon (at start and every hour) with an audit
//! entry; a tagged set, a set a rollout pinned and a young set stay.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, pb};
use sqlx::Connection;

use super::{header, pinned};

/// How long the test's daemons keep an untagged set.
const RETENTION: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread")]
async fn untagged_unused_sets_past_retention_are_collected_and_the_rest_stay() -> anyhow::Result<()>
{
    let fleet = Fleet::sqlite(2).await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("control.db");
    let own = MigrationCopy::empty()?;
    own.write("0001_own.up.sql", "CREATE TABLE own (x int);")?;
    let mut config = TestDaemon::config(&fleet, own.path(), Duration::from_secs(10))?;
    config.control_store = format!("sqlite://{}?mode=rwc", db.display());
    config.set_retention = RETENTION;
    let d = TestDaemon::start_with(config.clone()).await?;
    let mut client = d.client();
    let set = |n: u32| {
        vec![(
            format!("{n:04}_t{n}.up.sql"),
            format!("CREATE TABLE t{n} (x int);").into_bytes(),
        )]
    };
    let old = client.publish_set(header("sqlite", "", ""), set(1)).await?;
    let tagged = client
        .publish_set(header("sqlite", "", "keep"), set(2))
        .await?;
    let run = client.publish_set(header("sqlite", "", ""), set(3)).await?;
    let applied = d
        .apply(pb::ApplyRequest {
            set: Some(run.digest.clone()),
            ..avocet_tests::request()
        })
        .await?;
    let rollout = client.rollout(applied.id().context("rollout id")?).await?;
    ensure!(
        rollout.state == pb::RolloutState::Succeeded as i32 && pinned(&rollout)? == run.digest,
        "{rollout:?}"
    );
    tokio::time::sleep(RETENTION + Duration::from_millis(500)).await;
    // Published just before the restart: younger than the retention when it collects.
    let young = client.publish_set(header("sqlite", "", ""), set(4)).await?;
    d.stop().await?;

    // At start the daemon collects: the old untagged set nothing uses goes, and only it.
    let d = TestDaemon::start_with(config).await?;
    let want: BTreeSet<String> = [&tagged, &run, &young]
        .iter()
        .map(|p| p.digest.clone())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stored: BTreeSet<String> = d
            .client()
            .list_sets()
            .await?
            .into_iter()
            .map(|s| s.digest)
            .collect();
        if stored == want {
            break;
        }
        ensure!(
            stored.is_superset(&want),
            "a set in use or young was collected: {stored:?}, want {want:?}"
        );
        ensure!(
            tokio::time::Instant::now() < deadline,
            "after 20 s the store holds {stored:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = d
        .client()
        .get_set(&old.digest, false)
        .await
        .expect_err("a collected set read back");
    ensure!(e.code() == Some(tonic::Code::NotFound), "{e}");
    // The audit says who deleted it and why; its files are gone with it.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    let audit: Vec<(String, String, String)> =
        sqlx::query_as("SELECT method, caller, detail FROM audit WHERE detail LIKE ?")
            .bind(format!("%{}%", old.digest))
            .fetch_all(&mut conn)
            .await?;
    ensure!(
        audit.iter().any(
            |(method, caller, detail)| method == "avocet.v1.Sets/DeleteSet"
                && caller == "set_retention"
                && detail.contains("collected")
        ),
        "{audit:?}"
    );
    let (files,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM published_set_files WHERE set_digest = ?")
            .bind(&old.digest)
            .fetch_one(&mut conn)
            .await?;
    ensure!(files == 0, "{files} files of the collected set left");
    d.stop().await?;
    Ok(())
}
