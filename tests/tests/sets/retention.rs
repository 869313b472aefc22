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
async fn past_retention_a_sqlite_store_keeps_only_sets_in_use_or_young() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("control.db").display()
    );
    collects_on(&url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn past_retention_a_postgres_store_keeps_only_sets_in_use_or_young() -> anyhow::Result<()> {
    let control = Fleet::postgres(1).await?;
    collects_on(&control.tenants[0].dsn).await
}

/// Three sets published long enough ago on the control store `url` (one untagged and
/// unused, one tagged, one a finished rollout ran) and one just before a restart: at start
/// the daemon deletes the first only, with its files and an audit entry.
async fn collects_on(url: &str) -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let own = MigrationCopy::empty()?;
    own.write("0001_own.up.sql", "CREATE TABLE own (x int);")?;
    let mut config = TestDaemon::config(&fleet, own.path(), Duration::from_secs(10))?;
    config.control_store = url.to_owned();
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
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let audit: Vec<(String, String, String)> =
        sqlx::query_as("SELECT method, caller, detail FROM audit WHERE detail LIKE $1")
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
        sqlx::query_as("SELECT COUNT(*) FROM published_set_files WHERE set_digest = $1")
            .bind(&old.digest)
            .fetch_one(&mut conn)
            .await?;
    ensure!(files == 0, "{files} files of the collected set left");
    d.stop().await?;
    Ok(())
}
