//! End-to-end against a real MariaDB (MySQL) server.

use avocet_tests::{Fleet, scenarios};

#[tokio::test(flavor = "multi_thread")]
async fn fleet_of_10_applies_rolls_back_and_reapplies() -> anyhow::Result<()> {
    scenarios::full_cycle(Fleet::mysql(10).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_applied_file_is_reported_as_drift() -> anyhow::Result<()> {
    scenarios::drift(Fleet::mysql(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_migration_is_recorded_with_progress_and_others_finish() -> anyhow::Result<()> {
    scenarios::failing_migration(Fleet::mysql(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_applies_run_each_migration_once() -> anyhow::Result<()> {
    scenarios::concurrent_applies(Fleet::mysql(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn held_named_lock_times_out() -> anyhow::Result<()> {
    scenarios::lock_timeout(Fleet::mysql(1).await?).await
}

/// A crash during a non-transactional migration leaves a `running` record: plan and apply
/// refuse the tenant until an operator repairs it, and the other tenants carry on.
#[tokio::test(flavor = "multi_thread")]
async fn running_record_blocks_the_tenant_until_repaired() -> anyhow::Result<()> {
    use anyhow::ensure;
    use avocet_tests::{TestDaemon, VersionField, pb, request};

    let fleet = Fleet::mysql(2).await?;
    let daemon = TestDaemon::sample(&fleet, std::time::Duration::from_secs(5)).await?;
    let to = |v| pb::ApplyRequest {
        target_version: Some(pb::Version::number(v)),
        ..request()
    };
    let run = daemon.apply(to(4)).await?;
    ensure!(run.finished().expect("finished").failed == 0);
    // What a daemon that died in the middle of version 5 leaves behind.
    fleet
        .exec(
            0,
            "UPDATE avocet_migrations SET status = 'running', statements_done = 1 \
             WHERE version = 4",
        )
        .await?;
    let plan = daemon.plan().await?;
    let d = &plan.tenants[0].diagnostics[0];
    ensure!(
        plan.tenants[0].blocked && d.code == "running_migration",
        "{d:?}"
    );
    ensure!(d.message.contains("version 4"), "{d:?}");
    ensure!(!plan.tenants[1].blocked);

    let run = daemon.apply(to(16)).await?;
    let t0 = run.tenant("t00").expect("t00");
    ensure!(
        t0.error
            .as_ref()
            .is_some_and(|e| e.code == "blocked" && e.version.int() == Some(4))
    );
    ensure!(t0.migrations_run == 0);
    ensure!(run.tenant("t01").expect("t01").current_version.int() == Some(16));

    let repaired = daemon.mark_applied("t00", 4).await?;
    ensure!(repaired.previous_status == "running");
    let run = daemon.apply(to(16)).await?;
    ensure!(run.tenant("t00").expect("t00").migrations_run == 12);
    scenarios::assert_latest_schema(&fleet, 0).await?;
    daemon.stop().await
}
