//! The admin listener after real rollouts on PostgreSQL: `/metrics` parsed as the
//! Prometheus text format, its histograms counting the migrations the events reported, and
//! the health gauges counting the tenants really behind, failed and unreachable; `/livez`
//! and `/readyz`.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{
    Fleet, MigrationCopy, Scrape, TestDaemon, free_port, get, only, pb, request, scenarios::LATEST,
    scrape,
};
use prometheus_parse::Value;

/// The samples of `metric` whose labels include every pair of `labels`.
fn samples<'a>(
    s: &'a Scrape,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
    s.samples.iter().filter(move |sample| {
        sample.metric == metric && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
    })
}

/// The one value of gauge or counter `metric` with `labels`.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    let found: Vec<f64> = samples(s, metric, labels)
        .filter_map(|sample| match sample.value {
            Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    ensure!(found.len() == 1, "{metric} {labels:?}: {found:?}");
    Ok(found[0])
}

/// The observation count of histogram `metric` summed over the series with `labels` (its
/// `+Inf` bucket), checked against its `_count` series.
fn histogram_count(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> anyhow::Result<u64> {
    let mut total = 0.0;
    for sample in samples(s, metric, labels) {
        let Value::Histogram(buckets) = &sample.value else {
            continue;
        };
        let inf = buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .context("no +Inf bucket")?;
        total += inf.count;
    }
    let counted: f64 = samples(s, &format!("{metric}_count"), labels)
        .filter_map(|sample| match sample.value {
            Value::Untyped(v) | Value::Counter(v) => Some(v),
            _ => None,
        })
        .sum();
    ensure!(
        total == counted,
        "{metric}: buckets say {total}, _count {counted}"
    );
    Ok(total as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_counts_the_migrations_run_and_the_tenants_behind_failed_and_unreachable()
-> anyhow::Result<()> {
    let mut fleet = Fleet::postgres(4).await?;
    // t03 fails at version 3: its table is already there.
    fleet
        .exec(3, "CREATE TABLE projects (id INTEGER PRIMARY KEY)")
        .await?;
    // t04 is unreachable: nothing listens on its port.
    let mut gone = fleet.tenants[0].clone();
    gone.id = "t04".into();
    gone.dsn = format!("postgres://postgres@127.0.0.1:{}/nowhere", free_port()?);
    fleet.tenants.push(gone);
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(10)).await?;
    let fleet_label = [("fleet", "test")];

    let before = scrape(daemon.admin).await?;
    ensure!(value(&before, "avocet_fleet_tenants", &fleet_label)? == 5.0);
    ensure!(value(&before, "avocet_fleet_tenants_unknown", &fleet_label)? == 5.0);
    ensure!(value(&before, "avocet_fleet_tenants_behind", &fleet_label)? == 0.0);
    ensure!(value(&before, "avocet_fleet_latest_version", &fleet_label)? == LATEST as f64);
    ensure!(value(&before, "avocet_fleet_lock_timeout_seconds", &fleet_label)? == 10.0);

    // t01 stops at version 1 (behind); then the others go to the latest: t00 and t02
    // succeed, t03 fails at version 3 after 1 and 2, t04 cannot be reached.
    let first = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t01"]),
            target_version: Some(1.into()),
            ..request()
        })
        .await?;
    ensure!(first.finished().context("first finished")?.succeeded == 1);
    let second = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t00", "t02", "t03", "t04"]),
            ..request()
        })
        .await?;
    let end = second.finished().context("second finished")?;
    ensure!(end.succeeded == 2 && end.failed == 2, "{end:?}");

    let status = |s: pb::MigrationStatus| {
        first
            .migrations()
            .chain(second.migrations())
            .filter(|m| m.status == s as i32)
            .count() as u64
    };
    let (applied, failed) = (
        status(pb::MigrationStatus::Applied),
        status(pb::MigrationStatus::Failed),
    );
    ensure!(
        applied == 1 + 2 * LATEST as u64 + 2 && failed == 1,
        "{applied} {failed}"
    );

    let s = scrape(daemon.admin).await?;
    let up = |status| {
        [
            ("fleet", "test"),
            ("dialect", "postgres"),
            ("direction", "up"),
            ("status", status),
        ]
    };
    let duration = "avocet_migration_duration_seconds";
    ensure!(histogram_count(&s, duration, &up("applied"))? == applied);
    ensure!(histogram_count(&s, duration, &up("failed"))? == failed);
    ensure!(value(&s, "avocet_migrations_total", &up("applied"))? == applied as f64);
    ensure!(value(&s, "avocet_migrations_total", &up("failed"))? == failed as f64);
    // Tenant ids are not labels unless the fleet opts in.
    ensure!(
        s.samples.iter().all(|x| x.labels.get("tenant").is_none()),
        "a tenant label"
    );

    // The health gauges against the tenants' real state, each tenant in one class as
    // `Status` counts it: t01 (version 1) behind, t03 (version 2, a failed record) failed,
    // t04 unreachable, nobody unknown.
    ensure!(fleet.history(1).await?.last().map(|h| h.0) == Some(1));
    ensure!(fleet.history(3).await?.last().map(|h| (h.0, h.1.as_str())) == Some((3, "failed")));
    ensure!(value(&s, "avocet_fleet_tenants_behind", &fleet_label)? == 1.0);
    ensure!(value(&s, "avocet_fleet_tenants_failed", &fleet_label)? == 1.0);
    ensure!(value(&s, "avocet_fleet_tenants_unreachable", &fleet_label)? == 1.0);
    ensure!(value(&s, "avocet_fleet_tenants_unknown", &fleet_label)? == 0.0);

    // One lock wait per tenant that was reached; one tenant duration per tenant run.
    let locks = histogram_count(&s, "avocet_lock_wait_seconds", &[("acquired", "true")])?;
    ensure!(locks == 4, "{locks} lock waits");
    let tenants = histogram_count(&s, "avocet_tenant_duration_seconds", &fleet_label)?;
    ensure!(tenants == 5, "{tenants} tenant durations");

    // The rollouts by the state the API reports for them.
    let mut client = daemon.client();
    for run in [&first, &second] {
        let rollout = client.rollout(run.id().context("id")?).await?;
        let state = pb::RolloutState::try_from(rollout.state)?
            .as_str_name()
            .trim_start_matches("ROLLOUT_STATE_")
            .to_ascii_lowercase();
        let expected = if run.finished().is_some_and(|f| f.failed > 0) {
            "failed"
        } else {
            "succeeded"
        };
        ensure!(state == expected, "{state}");
    }
    ensure!(
        value(
            &s,
            "avocet_rollouts",
            &[("fleet", "test"), ("state", "succeeded")]
        )? == 1.0
    );
    ensure!(
        value(
            &s,
            "avocet_rollouts",
            &[("fleet", "test"), ("state", "failed")]
        )? == 1.0
    );
    ensure!(value(&s, "avocet_rollouts_started_total", &fleet_label)? == 2.0);
    // States with no rollout are 0, not missing, so a dashboard shows 0 (issue 32, item 10).
    for state in ["pending", "running", "paused", "cancelled", "interrupted"] {
        let labels = [("fleet", "test"), ("state", state)];
        ensure!(value(&s, "avocet_rollouts", &labels)? == 0.0, "{state}");
    }
    ensure!(
        value(
            &s,
            "avocet_rollout_tenants",
            &[("fleet", "test"), ("state", "running")]
        )? == 0.0
    );
    // The resource names the daemon's version.
    let version = env!("CARGO_PKG_VERSION");
    ensure!(
        value(
            &s,
            "target_info",
            &[("service_name", "avocetd"), ("service_version", version)]
        )? == 1.0
    );

    // The gRPC calls, by method: the two Applies and the two Gets.
    let apply = [("rpc_method", "avocet.v1.Migrator/Apply")];
    ensure!(histogram_count(&s, "rpc_server_call_duration_seconds", &apply)? == 2);
    // Nothing is held now.
    ensure!(value(&s, "avocet_connections_in_use", &[])? == 0.0);
    ensure!(value(&s, "avocet_connections_waiting", &[])? == 0.0);
    ensure!(value(&s, "avocet_connections_limit", &[])? == 64.0);
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn livez_and_readyz_answer_and_a_set_that_no_longer_loads_leaves_the_daemon_ready()
-> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    ensure!(get(daemon.admin, "/livez").await? == (200, "ok\n".into()));
    ensure!(get(daemon.admin, "/readyz").await? == (200, "ready\n".into()));
    ensure!(get(daemon.admin, "/nothing").await?.0 == 404);
    // A set that no longer loads breaks its fleet, said by ListFleets, not the daemon's
    // readiness: the rollouts' control and any other fleet stay served (issue 24, item 9).
    let set = MigrationCopy::of(fleet.dialect)?;
    let config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    let broken = TestDaemon::start_with(config).await?;
    ensure!(get(broken.admin, "/readyz").await?.0 == 200);
    set.write("0001_duplicate.up.sql", "SELECT 1;")?;
    ensure!(get(broken.admin, "/readyz").await? == (200, "ready\n".into()));
    let fleets = broken.client().list_fleets().await?;
    ensure!(
        fleets.len() == 1 && fleets[0].error.contains("0001_duplicate.up.sql"),
        "{fleets:?}"
    );
    broken.stop().await?;
    let admin = daemon.admin;
    daemon.stop().await?;
    ensure!(
        get(admin, "/livez").await.is_err(),
        "still answering after stop"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_that_opts_in_labels_its_migration_metrics_with_tenant_ids() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let mut config = TestDaemon::config(
        &fleet,
        &avocet_tests::sample_dir(fleet.dialect),
        Duration::from_secs(5),
    )?;
    for f in config.fleets.values_mut() {
        f.metrics_tenant_labels = true;
    }
    let daemon = TestDaemon::start_with(config).await?;
    daemon.apply_all().await?;
    let s = scrape(daemon.admin).await?;
    for tenant in ["t00", "t01"] {
        let labels = [("tenant", tenant), ("status", "applied")];
        let count = histogram_count(&s, "avocet_migration_duration_seconds", &labels)?;
        ensure!(count == LATEST as u64, "{tenant}: {count}");
        let locks = histogram_count(&s, "avocet_lock_wait_seconds", &[("tenant", tenant)])?;
        ensure!(locks == 1, "{tenant}: {locks} lock waits");
    }
    daemon.stop().await
}
