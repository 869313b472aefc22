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
