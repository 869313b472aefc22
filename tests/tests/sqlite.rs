//! End-to-end against SQLite files.

use avocet_tests::{Fleet, scenarios};

#[tokio::test(flavor = "multi_thread")]
async fn fleet_of_10_applies_rolls_back_and_reapplies() -> anyhow::Result<()> {
    scenarios::full_cycle(Fleet::sqlite(10).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_applied_file_is_reported_as_drift() -> anyhow::Result<()> {
    scenarios::drift(Fleet::sqlite(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_migration_leaves_no_trace_and_others_finish() -> anyhow::Result<()> {
    scenarios::failing_migration(Fleet::sqlite(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_applies_run_each_migration_once() -> anyhow::Result<()> {
    scenarios::concurrent_applies(Fleet::sqlite(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn held_file_lock_times_out() -> anyhow::Result<()> {
    scenarios::lock_timeout(Fleet::sqlite(1).await?).await
}

/// Batches: each apply run is one batch; `last_batch` and `to_version` roll back by them.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_last_batch_and_to_version() -> anyhow::Result<()> {
    use anyhow::ensure;
    use avocet_tests::{TestDaemon, VersionField, pb, pb::rollback_request::Target, request};

    let fleet = Fleet::sqlite(2).await?;
    let daemon = TestDaemon::sample(&fleet, std::time::Duration::from_secs(5)).await?;
    for v in [5, 8] {
        let req = pb::ApplyRequest {
            target_version: Some(pb::Version::number(v)),
            ..request()
        };
        ensure!(daemon.apply(req).await?.finished().expect("f").failed == 0);
    }
    let run = daemon.rollback(Target::LastBatch(true)).await?;
    ensure!(
        run.tenants()
            .all(|t| t.current_version.int() == Some(5) && t.migrations_run == 3)
    );
    let run = daemon.rollback(Target::ToVersion(2.into())).await?;
    ensure!(
        run.tenants()
            .all(|t| t.current_version.int() == Some(2) && t.migrations_run == 3)
    );
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            tables.contains("users") && !tables.contains("projects"),
            "{tables:?}"
        );
    }
    let run = daemon.rollback(Target::ToVersion(0.into())).await?;
    ensure!(run.tenants().all(|t| t.current_version.is_none()));
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            tables.len() == 2,
            "only the history tables remain: {tables:?}"
        );
    }
    daemon.stop().await
}
