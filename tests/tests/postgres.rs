//! End-to-end against a real PostgreSQL server.

use avocet_tests::{Fleet, scenarios};

#[tokio::test(flavor = "multi_thread")]
async fn fleet_of_50_applies_rolls_back_and_reapplies() -> anyhow::Result<()> {
    scenarios::full_cycle(Fleet::postgres(50).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_applied_file_is_reported_as_drift() -> anyhow::Result<()> {
    scenarios::drift(Fleet::postgres(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_migration_leaves_no_trace_and_others_finish() -> anyhow::Result<()> {
    scenarios::failing_migration(Fleet::postgres(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_applies_run_each_migration_once() -> anyhow::Result<()> {
    scenarios::concurrent_applies(Fleet::postgres(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn held_advisory_lock_times_out() -> anyhow::Result<()> {
    scenarios::lock_timeout(Fleet::postgres(1).await?).await
}
