//! `down` scripts are checksummed too (issue 11), on real SQLite, PostgreSQL and MariaDB
//! tenants: each applied record keeps its `down` script's SHA-256; an edited or removed
//! `down` script is a `down_checksum_mismatch` warning in Verify, Plan and History, and
//! `repair --accept-checksum` records the new one. A history table made before the column
//! is read as it is (a read changes nothing) and gains the column at the next apply, its
//! old records knowing no `down` checksum and so never drifting.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_client::Client;
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb};
use sha2::{Digest, Sha256};

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `(code, version, severity)` of every diagnostic of `tenant`.
fn diagnostics(v: &pb::VerifyResponse, tenant: &str) -> Vec<(String, Option<i64>, i32)> {
    v.tenants
        .iter()
        .filter(|t| t.tenant == tenant)
        .flat_map(|t| {
            t.diagnostics
                .iter()
                .map(|d| (d.code.clone(), d.version.int(), d.severity))
        })
        .collect()
}

fn down_warning(version: i64) -> (String, Option<i64>, i32) {
    (
        "down_checksum_mismatch".into(),
        Some(version),
        pb::Severity::Warning as i32,
    )
}

async fn verify(c: &mut Client) -> anyhow::Result<pb::VerifyResponse> {
    Ok(c.verify(pb::VerifyRequest {
        fleet: FLEET.into(),
        ..Default::default()
    })
    .await?)
}

/// The recorded `down_checksum` of `version` on tenant `i`, read with the tenant's own SQL.
async fn recorded(fleet: &Fleet, i: usize, version: i64) -> anyhow::Result<Option<String>> {
    fleet
        .scalar(
            i,
            &format!("SELECT down_checksum FROM avocet_migrations WHERE version = {version}"),
        )
        .await
}

/// Three migrations: 1 and 2 reversible, 3 without a `down` script.
fn set() -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (id int);")?;
    set.write("0001_a.down.sql", "DROP TABLE a;")?;
    set.write("0002_b.up.sql", "CREATE TABLE b (id int);")?;
    set.write("0002_b.down.sql", "DROP TABLE b;")?;
    set.write("0003_c.up.sql", "CREATE TABLE c (id int);")?;
    Ok(set)
}

async fn edits_are_warned_and_accepted(fleet: Fleet) -> anyhow::Result<()> {
    let set = set()?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    daemon.apply_all().await?;
    for i in 0..2 {
        ensure!(recorded(&fleet, i, 1).await?.as_deref() == Some(&*sha256("DROP TABLE a;")));
        ensure!(recorded(&fleet, i, 2).await?.as_deref() == Some(&*sha256("DROP TABLE b;")));
        ensure!(
            recorded(&fleet, i, 3).await?.is_none(),
            "no down script, no checksum"
        );
    }
    ensure!(diagnostics(&verify(&mut c).await?, "t00").is_empty());

    // An edited down script of applied version 2, and a down script added to version 3.
    let edited = "-- b goes, and its rows with it\nDROP TABLE b;";
    set.write("0002_b.down.sql", edited)?;
    set.write("0003_c.down.sql", "DROP TABLE c;")?;
    let v = verify(&mut c).await?;
    for t in ["t00", "t01"] {
        ensure!(diagnostics(&v, t) == [down_warning(2)], "{v:?}");
    }
    let message = &v.tenants[0].diagnostics[0].message;
    ensure!(message.contains("down script changed"), "{message}");
    let plan = daemon.plan().await?;
    ensure!(
        plan.tenants.iter().all(|t| !t.blocked),
        "a down drift blocks nothing: {plan:?}"
    );
    let h = c.history(FLEET, "t00").await?;
    let drifted: Vec<i64> = h
        .records
        .iter()
        .filter(|r| r.down_drift)
        .map(|r| r.version.int().unwrap_or_default())
        .collect();
    ensure!(drifted == [2], "{h:?}");
    ensure!(
        h.records.iter().all(|r| !r.drift),
        "the up scripts did not change"
    );

    // Accepted on t00 only: the record takes the file's down checksum, logged.
    let accepted = c
        .repair(pb::RepairRequest {
            fleet: FLEET.into(),
            tenant: "t00".into(),
            version: Some(2.into()),
            action: pb::RepairAction::AcceptChecksum as i32,
            ..Default::default()
        })
        .await?;
    ensure!(accepted.previous_status == "applied", "{accepted:?}");
    ensure!(recorded(&fleet, 0, 2).await?.as_deref() == Some(&*sha256(edited)));
    ensure!(
        fleet.log_count(0, 2, "applied").await? == 2,
        "the acceptance is logged"
    );
    let v = verify(&mut c).await?;
    ensure!(diagnostics(&v, "t00").is_empty(), "{v:?}");
    ensure!(diagnostics(&v, "t01") == [down_warning(2)], "{v:?}");

    // A down script removed since: still a warning on t01, naming the removal.
    std::fs::remove_file(set.path().join("0002_b.down.sql"))?;
    let v = verify(&mut c).await?;
    ensure!(diagnostics(&v, "t01") == [down_warning(2)], "{v:?}");
    let t01 = v
        .tenants
        .iter()
        .find(|t| t.tenant == "t01")
        .context("t01")?;
    ensure!(
        t01.diagnostics[0].message.contains("no down script"),
        "{:?}",
        t01.diagnostics
    );
    daemon.stop().await
}

/// The history table of the release before `down_checksum`: today's, less that column.
async fn make_legacy(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    fleet
        .exec(i, "ALTER TABLE avocet_migrations DROP COLUMN down_checksum")
        .await?;
    ensure!(
        !fleet
            .columns(i, "avocet_migrations")
            .await?
            .contains("down_checksum")
    );
    Ok(())
}

async fn an_old_history_table_is_upgraded_by_the_next_apply(fleet: Fleet) -> anyhow::Result<()> {
    let set = set()?;
    std::fs::remove_file(set.path().join("0003_c.up.sql"))?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    daemon.apply_all().await?;
    for i in 0..2 {
        make_legacy(&fleet, i).await?;
    }
    // Reads work on the old table and change nothing.
    set.write(
        "0001_a.down.sql",
        "-- edited before anyone knew\nDROP TABLE a;",
    )?;
    let v = verify(&mut c).await?;
    ensure!(diagnostics(&v, "t00").is_empty(), "{v:?}");
    let status = daemon.status().await?;
    ensure!(status.failed == 0 && status.unreachable == 0, "{status:?}");
    ensure!(
        !fleet
            .columns(0, "avocet_migrations")
            .await?
            .contains("down_checksum"),
        "a read altered the history table"
    );

    // The next apply adds the column, then records version 3's down checksum.
    set.write("0003_c.up.sql", "CREATE TABLE c (id int);")?;
    set.write("0003_c.down.sql", "DROP TABLE c;")?;
    let run = daemon.apply_all().await?;
    let finished = run.finished().context("finished")?;
    ensure!(
        finished.migrations_run == 2 && finished.failed == 0,
        "{run:?}"
    );
    for i in 0..2 {
        ensure!(
            fleet
                .columns(i, "avocet_migrations")
                .await?
                .contains("down_checksum")
        );
        ensure!(
            recorded(&fleet, i, 1).await?.is_none(),
            "old records know no down script"
        );
        ensure!(recorded(&fleet, i, 3).await?.as_deref() == Some(&*sha256("DROP TABLE c;")));
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(tables.contains("c"), "{tables:?}");
    }
    // Old records never drift; new ones do.
    set.write("0003_c.down.sql", "-- c\nDROP TABLE c;")?;
    let v = verify(&mut c).await?;
    ensure!(diagnostics(&v, "t00") == [down_warning(3)], "{v:?}");
    // And a rollback runs the files as they are now, old records included.
    let back = daemon
        .rollback(pb::rollback_request::Target::Steps(3))
        .await?;
    ensure!(
        back.finished().context("finished")?.migrations_run == 6,
        "{back:?}"
    );
    let tables = fleet.objects(0, "BASE TABLE").await?;
    ensure!(
        !tables.contains("a") && !tables.contains("c"),
        "rolled back: {tables:?}"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_down_edits_are_warned_and_accepted() -> anyhow::Result<()> {
    edits_are_warned_and_accepted(Fleet::sqlite(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_edits_are_warned_and_accepted() -> anyhow::Result<()> {
    edits_are_warned_and_accepted(Fleet::postgres(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_down_edits_are_warned_and_accepted() -> anyhow::Result<()> {
    edits_are_warned_and_accepted(Fleet::mysql(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_old_history_table_is_upgraded() -> anyhow::Result<()> {
    an_old_history_table_is_upgraded_by_the_next_apply(Fleet::sqlite(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_old_history_table_is_upgraded() -> anyhow::Result<()> {
    an_old_history_table_is_upgraded_by_the_next_apply(Fleet::postgres(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_old_history_table_is_upgraded() -> anyhow::Result<()> {
    an_old_history_table_is_upgraded_by_the_next_apply(Fleet::mysql(2).await?).await
}
