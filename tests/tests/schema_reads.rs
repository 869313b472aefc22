//! Status, Plan and Verify over schema tenants read one database's tenants together (a
//! catalog query, then one `UNION ALL` of up to 250 history tables): each tenant still gets
//! its own history, whatever state its table is in, and the server sees a few queries, not
//! one per tenant.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, TestDaemon, VersionField, only, pb, request};

/// More than one query's worth (250), so the fleet is read in two.
const TENANTS: usize = 260;
/// The sample PostgreSQL set's newest version.
const LATEST: i64 = 16;
/// Where most tenants stand.
const MIDDLE: i64 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn schema_tenants_read_together_each_get_their_own_history() -> anyhow::Result<()> {
    let fleet = Fleet::postgres_schemas(TENANTS).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(10)).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            target_version: Some(MIDDLE.into()),
            concurrency: 8,
            ..request()
        })
        .await?;
    ensure!(run.finished().context("finished")?.succeeded == TENANTS as u32);
    let run = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["s00", "s01"]),
            ..request()
        })
        .await?;
    ensure!(run.finished().context("finished")?.succeeded == 2);
    daemon.stop().await?;

    // s10 lost its history table, s12 its whole schema; s255 (in the second query's
    // share) has a history table of an older layout, which one query cannot read with
    // the others: its share is read tenant by tenant.
    fleet
        .exec(10, "DROP TABLE avocet_migrations, avocet_migrations_log")
        .await?;
    fleet.exec(0, "DROP SCHEMA tenant_12 CASCADE").await?;
    fleet
        .exec(
            255,
            "ALTER TABLE avocet_migrations DROP COLUMN no_transaction",
        )
        .await?;

    let before = fleet.commits().await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(10)).await?;
    let status = daemon.status().await?;
    daemon.stop().await?;
    let status_commits = fleet.commits().await? - before;

    let expect = |id: &str| -> (Option<i64>, u32) {
        match id {
            "s00" | "s01" => (Some(LATEST), 0),
            "s10" | "s12" => (None, LATEST as u32),
            _ => (Some(MIDDLE), (LATEST - MIDDLE) as u32),
        }
    };
    ensure!(
        status.tenants.len() == TENANTS,
        "{} lines",
        status.tenants.len()
    );
    for t in &status.tenants {
        let (current, pending) = expect(&t.tenant);
        ensure!(
            t.error.is_empty() && t.current_version.int() == current && t.pending == pending,
            "status of {}: current {:?}, pending {}, error {:?}; expected {current:?}, {pending}",
            t.tenant,
            t.current_version.int(),
            t.pending,
            t.error
        );
    }
    // Two queries per 250 tenants, the older layout's share again one by one (10), the
    // sessions' own set-up: far from one read per tenant (260 before reads were batched).
    ensure!(
        status_commits < 60,
        "a fresh status of {TENANTS} schema tenants ran {status_commits} transactions"
    );
    // Reading recreated nothing.
    let schema = fleet
        .scalar(
            0,
            "SELECT COUNT(*)::text FROM pg_namespace WHERE nspname = 'tenant_12'",
        )
        .await?;
    ensure!(schema.as_deref() == Some("0"), "tenant_12 came back");

    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(10)).await?;
    let plan = daemon.plan().await?;
    ensure!(plan.tenants.len() == TENANTS);
    for t in &plan.tenants {
        let (current, pending) = expect(&t.tenant);
        ensure!(
            t.current_version.int() == current && t.steps.len() == pending as usize,
            "plan of {}: current {:?}, {} steps",
            t.tenant,
            t.current_version.int(),
            t.steps.len()
        );
    }
    let verify = daemon.verify().await?;
    ensure!(verify.tenants.len() == TENANTS);
    for t in &verify.tenants {
        let (current, pending) = expect(&t.tenant);
        ensure!(
            t.current_version.int() == current && t.pending == pending,
            "verify of {}: current {:?}, pending {}",
            t.tenant,
            t.current_version.int(),
            t.pending
        );
    }
    daemon.stop().await
}
