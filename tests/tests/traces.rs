//! Traces over the wire: the daemon exports OTLP/gRPC to a real receiver in-process while a
//! client that sends a W3C `traceparent` applies the sample set to a PostgreSQL fleet with
//! one failing tenant, leaving the call at the first event. (Its own binary: the tracing
//! subscriber is process-global.)

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use avocet_client::{Client, Credentials, Timeouts};
use avocet_tests::{Fleet, OtlpReceiver, TestDaemon, scenarios::LATEST, start_detached};
use opentelemetry_proto::tonic::{
    common::v1::any_value::Value,
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};

/// The caller's trace and span.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Attribute `key` of `span` as text.
fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    Some(match value.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollouts_span_tree_reaches_an_otlp_receiver_in_the_callers_trace() -> anyhow::Result<()>
{
    let receiver = OtlpReceiver::start().await?;
    let guard = avocet_daemon::init_telemetry_otlp("avocetd-test", "info", &receiver.endpoint)?;
    let fleet = Fleet::postgres(2).await?;
    // t01 fails at version 3: its table is already there.
    fleet
        .exec(1, "CREATE TABLE projects (id INTEGER PRIMARY KEY)")
        .await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(10)).await?;
    let credentials = Credentials {
        traceparent: Some(format!("00-{TRACE}-{PARENT}-01")),
        ..Default::default()
    };
    let mut client = Client::connect_as(&daemon.addr, Timeouts::default(), &credentials).await?;
    // The call ends at the first event; the rollout runs on in the background.
    let id = start_detached(&mut client).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.rollout(&id).await?.finished_at_unix_ms.is_none() {
        ensure!(Instant::now() < deadline, "the rollout did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await?;
    // Shutting the tracer down exports every span still queued.
    drop(guard);

    let spans = receiver.span_list();
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|s| hex::encode(&s.trace_id) == TRACE)
        .collect();
    let by_id: HashMap<Vec<u8>, &Span> = ours.iter().map(|s| (s.span_id.clone(), *s)).collect();
    let parent_of = |s: &Span| by_id.get(&s.parent_span_id).copied();
    let named = |name: &'static str| ours.iter().copied().filter(move |s| s.name == name);

    // The gRPC server span is the caller's span's child.
    let rollout = named("rollout")
        .find(|s| attr(s, "avocet.rollout.id").as_deref() == Some(id.as_str()))
        .context("no rollout span in the caller's trace")?;
    let call = parent_of(rollout).context("the rollout has no parent in the trace")?;
    ensure!(call.name == "avocet.v1.Migrator/Apply", "{}", call.name);
    ensure!(call.kind == SpanKind::Server as i32);
    ensure!(hex::encode(&call.parent_span_id) == PARENT);
    ensure!(attr(call, "rpc.system").as_deref() == Some("grpc"));
    ensure!(attr(call, "rpc.service").as_deref() == Some("avocet.v1.Migrator"));
    ensure!(attr(call, "rpc.method").as_deref() == Some("Apply"));
    ensure!(attr(call, "server.address").as_deref() == Some("127.0.0.1"));
    // The rollout outlives the call that started it, in the same trace.
    ensure!(rollout.end_time_unix_nano > call.end_time_unix_nano);
    ensure!(attr(rollout, "avocet.fleet").as_deref() == Some("test"));
    ensure!(attr(rollout, "db.system.name").as_deref() == Some("postgresql"));
    ensure!(attr(rollout, "avocet.direction").as_deref() == Some("up"));
    ensure!(attr(rollout, "avocet.state").as_deref() == Some("failed"));
    ensure!(is_error(rollout) && attr(rollout, "error.type").is_some());

    let waves: Vec<&Span> = named("wave").collect();
    ensure!(!waves.is_empty() && waves.iter().all(|w| w.parent_span_id == rollout.span_id));
    let tenants: Vec<&Span> = named("tenant").collect();
    ensure!(tenants.len() == 2, "{} tenant spans", tenants.len());
    for (i, tenant) in tenants.iter().enumerate() {
        ensure!(
            waves.iter().any(|w| w.span_id == tenant.parent_span_id),
            "tenant {i} outside a wave"
        );
    }
    let tenant = |id: &str| {
        tenants
            .iter()
            .copied()
            .find(|t| attr(t, "avocet.tenant").as_deref() == Some(id))
            .with_context(|| format!("no span of tenant {id}"))
    };
    for (i, id) in ["t00", "t01"].into_iter().enumerate() {
        let t = tenant(id)?;
        let database = fleet.tenants[i].dsn.rsplit('/').next().unwrap_or_default();
        ensure!(
            attr(t, "db.namespace").as_deref() == Some(database),
            "{:?}",
            attr(t, "db.namespace")
        );
        ensure!(attr(t, "avocet.fleet").as_deref() == Some("test"));
        ensure!(attr(t, "db.system.name").as_deref() == Some("postgresql"));
        // One lock span per tenant, its wait recorded.
        let locks: Vec<&Span> = named("lock")
            .filter(|l| l.parent_span_id == t.span_id)
            .collect();
        ensure!(
            locks.len() == 1 && attr(locks[0], "avocet.lock.wait_s").is_some(),
            "{id}: locks"
        );
        ensure!(!t.attributes.iter().any(|kv| kv.key.contains("dsn")));
    }
    let migrations = |t: &Span| -> Vec<&Span> {
        let mut m: Vec<&Span> = named("migration")
            .filter(|m| m.parent_span_id == t.span_id)
            .collect();
        m.sort_by_key(|m| attr(m, "avocet.version").and_then(|v| v.parse::<i64>().ok()));
        m
    };
    let (t00, t01) = (tenant("t00")?, tenant("t01")?);
    let done = migrations(t00);
    ensure!(
        done.len() == LATEST as usize,
        "{} migration spans of t00",
        done.len()
    );
    for (n, m) in done.iter().enumerate() {
        ensure!(attr(m, "avocet.version") == Some((n + 1).to_string()));
        ensure!(attr(m, "avocet.status").as_deref() == Some("applied") && !is_error(m));
        ensure!(attr(m, "avocet.migration").is_some_and(|name| !name.is_empty()));
    }
    ensure!(!is_error(t00) && attr(t00, "avocet.outcome").as_deref() == Some("succeeded"));
    // t01: 1 and 2 applied, 3 failed with the database's cause; the tenant failed.
    let tried = migrations(t01);
    ensure!(tried.len() == 3, "{} migration spans of t01", tried.len());
    let failed = tried[2];
    ensure!(attr(failed, "avocet.version").as_deref() == Some("3"));
    ensure!(attr(failed, "avocet.status").as_deref() == Some("failed") && is_error(failed));
    ensure!(attr(failed, "error.type").as_deref() == Some("migration_failed"));
    let message = failed
        .status
        .as_ref()
        .map(|s| s.message.as_str())
        .unwrap_or_default();
    ensure!(message.contains("projects"), "{message}");
    ensure!(is_error(t01) && attr(t01, "error.type").as_deref() == Some("migration_failed"));
    ensure!(attr(t01, "avocet.outcome").as_deref() == Some("failed"));
    Ok(())
}
