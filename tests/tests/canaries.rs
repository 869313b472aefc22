//! Canaries that test something: an apply's canary wave is made of tenants with work to
//! do, and a canary wave that ran nothing while later tenants have work stops the rollout,
//! saying why.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, only, pb, request};

fn canary(n: u32) -> Option<pb::Strategy> {
    Some(pb::Strategy {
        canary: Some(n),
        ..Default::default()
    })
}

fn two_migrations() -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write("0002_b.up.sql", "CREATE TABLE b (x int);")?;
    Ok(set)
}

/// The tenants' `TenantFinished` events in order: (tenant, migrations run).
fn finished(run: &avocet_client::RolloutRecord) -> Vec<(String, u32)> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::TenantFinished(t)) => {
                Some((t.tenant.clone(), t.migrations_run))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_canary_is_a_tenant_with_work_to_do() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let set = two_migrations()?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    // t00 is brought up to date first (the daemon then knows it has nothing to run).
    let first = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t00"]),
            ..request()
        })
        .await?;
    ensure!(first.finished().context("finished")?.migrations_run == 2);
    // The plan shows the canary wave a rollout would run: t01, not t00.
    let plan = daemon
        .client()
        .plan(pb::PlanRequest {
            fleet: "test".into(),
            strategy: canary(1),
            ..Default::default()
        })
        .await?;
    let wave0: Vec<&str> = plan
        .tenants
        .iter()
        .filter(|t| t.wave == 0)
        .map(|t| t.tenant.as_str())
        .collect();
    ensure!(wave0 == ["t01"], "canary wave planned: {wave0:?}");
    let run = daemon
        .apply(pb::ApplyRequest {
            strategy: canary(1),
            ..request()
        })
        .await?;
    let done = finished(&run);
    ensure!(
        done.first() == Some(&("t01".to_owned(), 2)),
        "the canary wave ran {done:?}"
    );
    let summary = run.finished().context("finished")?;
    ensure!(
        summary.state == pb::RolloutState::Succeeded as i32 && summary.migrations_run == 4,
        "{summary:?}"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_wave_that_ran_nothing_stops_the_rollout_saying_why() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let set = two_migrations()?;
    // t00 was brought up to date by a daemon whose control store is gone: the daemon below
    // has never read it, so nothing tells it t00 has nothing to run.
    let earlier = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    earlier
        .apply(pb::ApplyRequest {
            selector: only(&["t00"]),
            ..request()
        })
        .await?;
    earlier.stop().await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            strategy: canary(1),
            ..request()
        })
        .await?;
    let summary = run.finished().context("finished")?;
    ensure!(
        summary.state == pb::RolloutState::Failed as i32
            && summary.reason.contains("the canary wave ran nothing")
            && summary.reason.contains("t00")
            && summary.skipped == 2,
        "{summary:?}"
    );
    for i in [1, 2] {
        ensure!(
            !fleet.objects(i, "BASE TABLE").await?.contains("a"),
            "tenant {i} ran behind an idle canary"
        );
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_selector_chooses_the_canaries_by_labels() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let set = two_migrations()?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    let tenants = &mut config
        .fleets
        .get_mut(avocet_tests::FLEET)
        .context("fleet")?
        .tenants;
    tenants[2].labels.insert("tier".into(), "internal".into());
    let daemon = TestDaemon::start_with(config).await?;
    let by_labels = |labels: &str| {
        Some(pb::Strategy {
            canary: Some(1),
            canary_selector: labels.into(),
            ..Default::default()
        })
    };
    // A selector that matches nobody is refused before anything starts.
    let nobody = daemon
        .apply(pb::ApplyRequest {
            strategy: by_labels("tier=nonexistent"),
            ..request()
        })
        .await;
    let Err(refused) = nobody else {
        anyhow::bail!("a canary selector matching nobody was accepted");
    };
    ensure!(refused.to_string().contains("matches none"), "{refused}");
    let run = daemon
        .apply(pb::ApplyRequest {
            strategy: by_labels("tier=internal"),
            ..request()
        })
        .await?;
    let done = finished(&run);
    ensure!(
        done.first() == Some(&("t02".to_owned(), 2)),
        "the canary wave ran {done:?}"
    );
    ensure!(!fleet.objects(0, "BASE TABLE").await?.is_empty());
    daemon.stop().await
}
