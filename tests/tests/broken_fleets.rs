//! Issue 24, item 9: one broken set does not take every fleet down. A fleet whose set does
//! not load (a file with its own `BEGIN; … COMMIT;`) is reported broken, in `ListFleets`
//! with why, in `avocet_fleet_broken` and in gRPC health's `fleet/NAME`, while the other
//! fleet is served, the daemon starts, `/readyz` stays 200 and the overall health stays
//! SERVING; at start, and when the file appears at run time (and goes again).

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context, ensure};
use avocet_daemon::FleetConfig;
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, pb, sample_dir};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client};

/// A script the catalog refuses: it would end the engine's transaction.
const OWN_TRANSACTION: &str = "BEGIN;\nCREATE TABLE x (id INTEGER);\nCOMMIT;\n";

/// A daemon with fleets `good` (the sample set) and `other` (a copy of it in `other`),
/// each over its own SQLite tenants.
async fn two_fleets(good: &Fleet, other: &Fleet, set: &Path) -> anyhow::Result<TestDaemon> {
    let mut config = TestDaemon::config(good, &sample_dir(good.dialect), Duration::from_secs(5))?;
    let test = config.fleets.remove("test").context("fleet test")?;
    let broken = FleetConfig {
        tenants: other.tenants.clone(),
        ..FleetConfig::new(other.dialect, set.to_owned())
    };
    config.fleets = BTreeMap::from([("good".to_owned(), test), ("other".to_owned(), broken)]);
    TestDaemon::start_with(config).await
}

/// `ListFleets` as `name → error`.
async fn listed(daemon: &TestDaemon) -> anyhow::Result<BTreeMap<String, String>> {
    let fleets = daemon.client().list_fleets().await?;
    Ok(fleets.into_iter().map(|f| (f.name, f.error)).collect())
}

/// gRPC health of `service`.
async fn health(daemon: &TestDaemon, service: &str) -> anyhow::Result<i32> {
    let channel = tonic::transport::Channel::from_shared(daemon.addr.clone())?
        .connect()
        .await?;
    let resp = health_client::HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(resp.into_inner().status)
}

/// `avocet_fleet_broken` of each fleet.
async fn broken_gauge(daemon: &TestDaemon) -> anyhow::Result<BTreeMap<String, f64>> {
    let scrape = avocet_tests::scrape(daemon.admin).await?;
    Ok(scrape
        .samples
        .iter()
        .filter(|s| s.metric == "avocet_fleet_broken")
        .filter_map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            Some((s.labels.get("fleet")?.to_owned(), value))
        })
        .collect())
}

/// Everything the daemon says while fleet `other` is broken (`broken`) or not.
async fn says(daemon: &TestDaemon, broken: bool) -> anyhow::Result<()> {
    let fleets = listed(daemon).await?;
    ensure!(
        fleets.get("good").is_some_and(String::is_empty),
        "{fleets:?}"
    );
    let why = fleets.get("other").context("fleet other listed")?;
    match broken {
        true => ensure!(
            why.contains("0002_own.up.sql") && why.contains("COMMIT"),
            "{fleets:?}"
        ),
        false => ensure!(why.is_empty(), "{fleets:?}"),
    }
    // The other fleet is served.
    let plan = daemon
        .client()
        .plan(pb::PlanRequest {
            fleet: "good".into(),
            ..Default::default()
        })
        .await?;
    ensure!(!plan.tenants.is_empty(), "{plan:?}");
    let (status, body) = avocet_tests::get(daemon.admin, "/readyz").await?;
    ensure!(status == 200, "/readyz: {status} {body}");
    let gauge = broken_gauge(daemon).await?;
    ensure!(gauge.get("good") == Some(&0.0), "{gauge:?}");
    ensure!(
        gauge.get("other") == Some(&f64::from(u8::from(broken))),
        "{gauge:?}"
    );
    ensure!(health(daemon, "").await? == ServingStatus::Serving as i32);
    ensure!(health(daemon, "avocet.v1.Fleet").await? == ServingStatus::Serving as i32);
    let own = health(daemon, "fleet/other").await?;
    let expected = match broken {
        true => ServingStatus::NotServing,
        false => ServingStatus::Serving,
    };
    ensure!(own == expected as i32, "fleet/other: {own}");
    Ok(())
}

/// Retries `says` for up to 5 s: gRPC health is brought in line every second.
async fn soon_says(daemon: &TestDaemon, broken: bool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match says(daemon, broken).await {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_set_at_start_breaks_its_fleet_only() -> anyhow::Result<()> {
    let (good, other) = (Fleet::sqlite(2).await?, Fleet::sqlite(2).await?);
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (id INTEGER);")?;
    set.write("0002_own.up.sql", OWN_TRANSACTION)?;
    let daemon = two_fleets(&good, &other, set.path()).await?;
    soon_says(&daemon, true).await?;
    // Its own operations say why.
    let refused = daemon
        .client()
        .plan(pb::PlanRequest {
            fleet: "other".into(),
            ..Default::default()
        })
        .await
        .err()
        .context("a plan of the broken fleet")?;
    ensure!(refused.to_string().contains("0002_own.up.sql"), "{refused}");
    // Repaired: said so everywhere.
    std::fs::remove_file(set.path().join("0002_own.up.sql"))?;
    soon_says(&daemon, false).await?;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_that_breaks_at_run_time_breaks_its_fleet_only() -> anyhow::Result<()> {
    let (good, other) = (Fleet::sqlite(2).await?, Fleet::sqlite(2).await?);
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (id INTEGER);")?;
    let daemon = two_fleets(&good, &other, set.path()).await?;
    soon_says(&daemon, false).await?;
    set.write("0002_own.up.sql", OWN_TRANSACTION)?;
    soon_says(&daemon, true).await?;
    std::fs::remove_file(set.path().join("0002_own.up.sql"))?;
    soon_says(&daemon, false).await?;
    daemon.stop().await
}
