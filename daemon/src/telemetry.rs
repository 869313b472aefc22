//! Logs, OpenTelemetry traces and metrics.
//!
//! Spans: `rollout` ▸ `tenant` ▸ `migration`. Metrics (OTLP names; a Prometheus exporter
//! appends the unit, e.g. `avocet_migration_duration_milliseconds_bucket`):
//! - `avocet.migration.duration` histogram, ms: fleet, dialect, direction, status
//! - `avocet.tenant.duration` histogram, ms: fleet, direction, outcome
//! - `avocet.lock.wait` histogram, ms: fleet, dialect, acquired
//! - `avocet.rollouts` counter: fleet, direction
//!
//! Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (OpenTelemetry specification,
//! "OTLP Exporter Configuration"); otherwise the instruments are no-ops and only logs go to
//! stderr, filtered by `RUST_LOG` (default `info`).

use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Histogram},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{Resource, metrics::SdkMeterProvider, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Histogram bucket bounds in ms, from 5 ms to 30 min, so long migrations and 30 s lock
/// waits do not all land in the SDK's default top bucket (10 s).
const DURATION_BOUNDS_MS: [f64; 16] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 1.8e6,
];

/// Flushes and stops the exporters when dropped.
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
    }
}

/// Installs the global subscriber (stderr logs, plus OTLP traces and metrics when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
///
/// # Errors
/// When an OTLP exporter cannot be built from the environment's settings.
pub fn init(service: &'static str) -> anyhow::Result<TelemetryGuard> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    init_with(service, &filter)
}

/// As [`init`], with `filter` (`RUST_LOG` syntax) instead of the environment's.
///
/// # Errors
/// As [`init`], and when `filter` does not parse.
pub fn init_with(service: &'static str, filter: &str) -> anyhow::Result<TelemetryGuard> {
    // sqlx-postgres logs unknown DSN parameters with their values: keep DSNs out of logs.
    let filter = EnvFilter::try_new(filter)?.add_directive("sqlx_postgres::options=error".parse()?);
    // Colour only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init()?;
        return Ok(TelemetryGuard {
            tracer: None,
            meter: None,
        });
    }
    let resource = Resource::builder().with_service_name(service).build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()?;
    let meter = SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource)
        .build();
    global::set_meter_provider(meter.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(tracer.tracer(service));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard {
        tracer: Some(tracer),
        meter: Some(meter),
    })
}

/// The engine's instruments, created once from the global meter.
#[derive(Clone)]
pub(crate) struct Metrics {
    migration: Histogram<f64>,
    tenant: Histogram<f64>,
    lock_wait: Histogram<f64>,
    rollouts: Counter<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let meter = global::meter("avocet");
        let histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("ms")
                .with_description(description)
                .with_boundaries(DURATION_BOUNDS_MS.to_vec())
                .build()
        };
        Self {
            migration: histogram(
                "avocet.migration.duration",
                "Wall time of one migration step",
            ),
            tenant: histogram(
                "avocet.tenant.duration",
                "Wall time of one tenant in a rollout",
            ),
            lock_wait: histogram("avocet.lock.wait", "Time spent waiting for a tenant lock"),
            rollouts: meter
                .u64_counter("avocet.rollouts")
                .with_description("Rollouts started")
                .build(),
        }
    }
}

impl Metrics {
    /// One migration step finished; `status` is `applied`, `rolled_back` or `failed`.
    pub(crate) fn migration(
        &self,
        fleet: &str,
        dialect: &str,
        direction: &str,
        status: &str,
        ms: u64,
    ) {
        self.migration.record(
            ms as f64,
            &[
                KeyValue::new("fleet", fleet.to_owned()),
                KeyValue::new("dialect", dialect.to_owned()),
                KeyValue::new("direction", direction.to_owned()),
                KeyValue::new("status", status.to_owned()),
            ],
        );
    }

    /// One tenant finished; `outcome` is `succeeded`, `failed`, `skipped` or `planned`.
    pub(crate) fn tenant(&self, fleet: &str, direction: &str, outcome: &str, ms: u64) {
        self.tenant.record(
            ms as f64,
            &[
                KeyValue::new("fleet", fleet.to_owned()),
                KeyValue::new("direction", direction.to_owned()),
                KeyValue::new("outcome", outcome.to_owned()),
            ],
        );
    }

    /// A lock wait ended, acquired or timed out.
    pub(crate) fn lock_wait(&self, fleet: &str, dialect: &str, acquired: bool, ms: u64) {
        self.lock_wait.record(
            ms as f64,
            &[
                KeyValue::new("fleet", fleet.to_owned()),
                KeyValue::new("dialect", dialect.to_owned()),
                KeyValue::new("acquired", acquired.to_string()),
            ],
        );
    }

    /// A rollout started.
    pub(crate) fn rollout(&self, fleet: &str, direction: &str) {
        self.rollouts.add(
            1,
            &[
                KeyValue::new("fleet", fleet.to_owned()),
                KeyValue::new("direction", direction.to_owned()),
            ],
        );
    }
}
