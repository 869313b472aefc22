//! Metrics come from the same place as the events: a rollout records migration, tenant,
//! lock-wait and rollout metrics with their attributes. (Its own binary: the meter provider
//! is process-global.)

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, TestDaemon, scenarios};
use opentelemetry::global;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
    data::{AggregatedMetrics, HistogramDataPoint, MetricData},
};

fn attr(p: &HistogramDataPoint<f64>, key: &str) -> Option<String> {
    p.attributes()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_records_duration_metrics() -> anyhow::Result<()> {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    global::set_meter_provider(provider.clone());

    let fleet = Fleet::sqlite(3).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    ensure!(run.finished().context("finished")?.succeeded == 3);
    provider.force_flush()?;

    let exported = exporter.get_finished_metrics()?;
    let metrics: Vec<_> = exported
        .iter()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .collect();
    let histogram = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.name() == name)
            .and_then(|m| match m.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => Some(h),
                _ => None,
            })
    };
    let migrations = histogram("avocet.migration.duration").context("migration histogram")?;
    let applied: u64 = migrations
        .data_points()
        .filter(|p| attr(p, "status").as_deref() == Some("applied"))
        .inspect(|p| {
            assert_eq!(attr(p, "fleet").as_deref(), Some("test"));
            assert_eq!(attr(p, "dialect").as_deref(), Some("sqlite"));
            assert_eq!(attr(p, "direction").as_deref(), Some("up"));
        })
        .map(|p| p.count())
        .sum();
    ensure!(
        applied == 3 * scenarios::LATEST as u64,
        "{applied} applied migrations recorded"
    );
    let tenants = histogram("avocet.tenant.duration").context("tenant histogram")?;
    let succeeded: u64 = tenants
        .data_points()
        .filter(|p| attr(p, "outcome").as_deref() == Some("succeeded"))
        .map(|p| p.count())
        .sum();
    ensure!(succeeded == 3, "{succeeded} tenants recorded");
    let locks = histogram("avocet.lock.wait").context("lock histogram")?;
    ensure!(locks.data_points().map(|p| p.count()).sum::<u64>() == 3);
    ensure!(
        metrics.iter().any(|m| m.name() == "avocet.rollouts"),
        "no rollout counter"
    );
    daemon.stop().await
}
