//! Issue 24, item 8: replicas share the tenant registry. Two daemons on one PostgreSQL
//! control store: a tenant registered through A is listed, planned and applied through B
//! within 2 s, and its deregistration through B reaches A within 2 s; no restart.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, pb};

/// How soon a change through one replica must be seen by the other.
const WITHIN: Duration = Duration::from_secs(2);

/// A daemon over `fleet`'s first tenant only, with its control store at `store`.
async fn replica(fleet: &Fleet, set: &MigrationCopy, store: &str) -> anyhow::Result<TestDaemon> {
    let mut config = TestDaemon::config(fleet, set.path(), Duration::from_secs(5))?;
    let test = config.fleets.get_mut("test").context("fleet test")?;
    test.tenants.truncate(1);
    config.control_store = store.to_owned();
    TestDaemon::start_with(config).await
}

/// The ids `daemon` lists in fleet `test`.
async fn ids(daemon: &TestDaemon) -> anyhow::Result<Vec<String>> {
    let listed = daemon
        .client()
        .list_tenants(pb::ListTenantsRequest {
            fleet: "test".into(),
            ..Default::default()
        })
        .await?;
    Ok(listed.tenants.into_iter().map(|t| t.id).collect())
}

/// Waits (at most 5 s) until `daemon` lists `id` (or no longer does, with `listed` false);
/// returns how long that took.
async fn until_listed(daemon: &TestDaemon, id: &str, listed: bool) -> anyhow::Result<Duration> {
    let clock = Instant::now();
    loop {
        let now = ids(daemon).await?;
        if now.iter().any(|t| t == id) == listed {
            return Ok(clock.elapsed());
        }
        ensure!(
            clock.elapsed() < Duration::from_secs(5),
            "{id} listed: {now:?} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_through_one_replica_reaches_the_other() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    let control = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    let store = &control.tenants[0].dsn;
    let a = replica(&fleet, &set, store).await?;
    let b = replica(&fleet, &set, store).await?;
    let new = &fleet.tenants[1];
    ensure!(ids(&b).await? == ["t00"]);

    a.client()
        .register_tenant(pb::RegisterTenantRequest {
            fleet: "test".into(),
            tenant: new.id.clone(),
            dsn: new.dsn.clone(),
            ..Default::default()
        })
        .await?;
    let seen = until_listed(&b, &new.id, true).await?;
    println!("registration through A listed by B after {seen:?}");
    ensure!(seen < WITHIN, "B listed it after {seen:?}");
    // B plans and runs it, as one of its own.
    let plan = b
        .client()
        .plan(pb::PlanRequest {
            fleet: "test".into(),
            selector: avocet_tests::only(&[new.id.as_str()]),
            ..Default::default()
        })
        .await?;
    ensure!(plan.tenants.len() == 1, "{plan:?}");
    let run = b
        .apply(pb::ApplyRequest {
            fleet: "test".into(),
            selector: avocet_tests::only(&[new.id.as_str()]),
            ..Default::default()
        })
        .await?;
    let finished = run.finished().context("the apply finished")?;
    ensure!(finished.succeeded == 1, "{finished:?}");
    ensure!(fleet.history(1).await?.len() == 1);

    b.client().deregister_tenant("test", &new.id).await?;
    let gone = until_listed(&a, &new.id, false).await?;
    println!("deregistration through B unlisted by A after {gone:?}");
    ensure!(gone < WITHIN, "A still listed it after {gone:?}");
    // And A refuses it as unknown, as B does.
    let refused = a
        .client()
        .plan(pb::PlanRequest {
            fleet: "test".into(),
            selector: avocet_tests::only(&[new.id.as_str()]),
            ..Default::default()
        })
        .await;
    ensure!(refused.is_err(), "{refused:?}");
    a.stop().await?;
    b.stop().await
}
