//! Metrics over the wire: a real `avocetd` process, told by the standard `OTEL_*`
//! variables to push OTLP/gRPC to a receiver in-process, applies the sample set to two
//! PostgreSQL tenants; the data points it pushed count the migrations the events reported.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_client::{Client, RolloutRecord};
use avocet_tests::{Daemon, Fleet, OtlpReceiver, free_port, pb, scenarios::LATEST};
use opentelemetry_proto::tonic::{
    common::v1::any_value::Value,
    metrics::v1::{metric::Data, number_data_point::Value as NumberValue},
};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_pushes_migration_metrics_over_otlp() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let fleet = Fleet::postgres(2).await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let set = avocet_tests::sample_dir(fleet.dialect);
    let config = avocet_tests::write_config(dir.path(), port, &fleet, &set, None, 8)?;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
    ];
    let mut daemon = Daemon::start_with_env(AVOCETD, &config, port, &env).await?;
    let mut client: Client = daemon.client().await?;
    let run = RolloutRecord::collect(
        client
            .apply(pb::ApplyRequest {
                fleet: "test".into(),
                ..Default::default()
            })
            .await?,
    )
    .await?;
    let applied = run
        .migrations()
        .filter(|m| m.status == pb::MigrationStatus::Applied as i32)
        .count() as u64;
    ensure!(applied == 2 * LATEST as u64, "{applied} applied");
    // SIGTERM: the daemon stops and pushes what it has left.
    daemon.signal("TERM")?;
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.child.wait()).await??;
    ensure!(status.success(), "avocetd exited with {status}");

    // Cumulative temporality: the last export holding the histogram has the totals.
    let exports = receiver.metric_exports();
    let last = exports
        .iter()
        .rev()
        .flat_map(|e| &e.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == "avocet.migration.duration")
        .context("no migration histogram pushed")?;
    ensure!(last.unit == "s", "unit {:?}", last.unit);
    let Some(Data::Histogram(histogram)) = &last.data else {
        anyhow::bail!("not a histogram: {last:?}");
    };
    let text = |p: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str| {
        p.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .and_then(|v| match v {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
    };
    let pushed: u64 = histogram
        .data_points
        .iter()
        .filter(|p| text(&p.attributes, "status").as_deref() == Some("applied"))
        .inspect(|p| {
            assert_eq!(text(&p.attributes, "fleet").as_deref(), Some("test"));
            assert_eq!(text(&p.attributes, "dialect").as_deref(), Some("postgres"));
        })
        .map(|p| p.count)
        .sum();
    ensure!(pushed == applied, "{pushed} pushed, {applied} applied");
    // The health gauges as the daemon left the fleet: 2 tenants, none behind or failed.
    let gauge = |name: &str| {
        exports
            .iter()
            .rev()
            .flat_map(|e| &e.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == name)
            .and_then(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.first(),
                _ => None,
            })
            .and_then(|p| match p.value {
                Some(NumberValue::AsInt(i)) => Some(i),
                _ => None,
            })
    };
    ensure!(gauge("avocet.fleet.tenants") == Some(2));
    ensure!(gauge("avocet.fleet.tenants.behind") == Some(0));
    ensure!(gauge("avocet.fleet.tenants.failed") == Some(0));
    ensure!(gauge("avocet.fleet.latest_version") == Some(LATEST));
    Ok(())
}

/// `log_format = "json"` (here from `AVOCET_LOG_FORMAT`): every stderr line is a JSON
/// object, and the records of a rollout started by a client that sent a `traceparent`
/// carry that trace id in their span list.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_callers_trace_id() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let set = avocet_tests::sample_dir(fleet.dialect);
    let config = avocet_tests::write_config(dir.path(), port, &fleet, &set, None, 8)?;
    let log = dir.path().join("avocetd.log");
    let mut child = tokio::process::Command::new(AVOCETD)
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("AVOCET_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    let addr = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let credentials = avocet_client::Credentials {
        traceparent: Some(format!("00-{trace}-b7ad6b7169203331-01")),
        ..Default::default()
    };
    let mut client = loop {
        match Client::connect_as(&addr, Default::default(), &credentials).await {
            Ok(c) => break c,
            Err(e) => ensure!(std::time::Instant::now() < deadline, "not listening: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = RolloutRecord::collect(
        client
            .apply(pb::ApplyRequest {
                fleet: "test".into(),
                ..Default::default()
            })
            .await?,
    )
    .await?;
    ensure!(run.finished().context("finished")?.succeeded == 2);
    let pid = child.id().context("no pid")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    child.wait().await?;

    let text = std::fs::read_to_string(&log)?;
    let mut finished = 0;
    for line in text.lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        let message = record["fields"]["message"].as_str().unwrap_or_default();
        if message == "rollout finished" {
            let spans = record["spans"].as_array().context("no span list")?;
            ensure!(
                spans.iter().any(|s| s["trace_id"].as_str() == Some(trace)),
                "{line}"
            );
            finished += 1;
        }
    }
    ensure!(
        finished == 1,
        "{finished} 'rollout finished' records in\n{text}"
    );
    Ok(())
}
