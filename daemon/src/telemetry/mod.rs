//! Logs, OpenTelemetry traces and metrics (`docs/observability.md` lists every span,
//! attribute and metric with its unit).
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the process-wide subscriber: stderr logs, OTLP traces |
//! | `metrics.rs` | the engine's instruments ([`Metrics`]), durations in seconds |
//! | `backups.rs` | the backups' instruments ([`BackupMetrics`]) |
//! | `export.rs` | one daemon's meter provider: Prometheus text for `/metrics`, OTLP push, the gauges |
//! | `grpc.rs` | `rpc.server.call.duration`, a tower layer |
//! | `spans.rs` | the gRPC server span (continuing a caller's `traceparent`), span failure, `db.system.name` |
//!
//! Trace export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set
//! (OpenTelemetry specification, "OTLP Exporter Configuration"); logs go to stderr,
//! filtered by `RUST_LOG` (default `info`).

mod backups;
mod export;
mod grpc;
mod metrics;
mod spans;

pub(crate) use backups::BackupMetrics;
pub(crate) use export::MetricsExport;
pub use export::TelemetryError;
pub(crate) use grpc::{CallDurationLayer, serve_methods};
pub(crate) use metrics::{Metrics, MigrationDone, auth_failures};
pub(crate) use spans::{db_system_name, fail, record_trace_id, server_span};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Flushes and stops the trace exporter when dropped.
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
    }
}

/// Installs the global subscriber: stderr logs (pretty) and OpenTelemetry spans, exported
/// over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Metrics are each daemon's own
/// ([`crate::serve`]).
///
/// # Errors
/// When an OTLP exporter cannot be built from the environment's settings.
pub fn init(service: &'static str) -> anyhow::Result<TelemetryGuard> {
    init_as(service, LogFormat::Pretty)
}

/// As [`init`], writing log records in `format` (`log_format`).
///
/// # Errors
/// As [`init`].
pub fn init_as(service: &'static str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    install(service, &filter, format, env_exporter()?)
}

/// As [`init`], with `filter` (`RUST_LOG` syntax) instead of the environment's.
///
/// # Errors
/// As [`init`], and when `filter` does not parse.
pub fn init_with(service: &'static str, filter: &str) -> anyhow::Result<TelemetryGuard> {
    install(service, filter, LogFormat::Pretty, env_exporter()?)
}

/// As [`init_with`], exporting traces over OTLP/gRPC to `endpoint` (e.g.
/// `http://127.0.0.1:4317`) whatever the environment says.
///
/// # Errors
/// As [`init_with`].
pub fn init_otlp(
    service: &'static str,
    filter: &str,
    endpoint: &str,
) -> anyhow::Result<TelemetryGuard> {
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    install(service, filter, LogFormat::Pretty, Some(spans))
}

/// The OTLP span exporter the `OTEL_*` environment asks for, if any.
fn env_exporter() -> anyhow::Result<Option<opentelemetry_otlp::SpanExporter>> {
    let otlp = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    Ok(match otlp {
        true => Some(
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()?,
        ),
        false => None,
    })
}

/// Spans always go through OpenTelemetry (so a call's and a rollout's trace id is in the
/// logs, and a caller's `traceparent` is continued); they leave the process only with an
/// exporter.
fn install(
    service: &'static str,
    filter: &str,
    format: LogFormat,
    spans: Option<opentelemetry_otlp::SpanExporter>,
) -> anyhow::Result<TelemetryGuard> {
    // sqlx-postgres logs unknown DSN parameters with their values: keep DSNs out of logs.
    // sqlparser logs every statement it parses at debug (migrations, session_init): keep
    // scripts out of logs (issue 25, finding 21).
    let filter = EnvFilter::try_new(filter)?
        .add_directive("sqlx_postgres::options=error".parse()?)
        .add_directive("sqlparser=warn".parse()?);
    // Colour only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Pretty => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let mut tracer = SdkTracerProvider::builder().with_resource(resource);
    if let Some(spans) = spans {
        tracer = tracer.with_batch_exporter(spans);
    }
    let tracer = tracer.build();
    let otel = tracing_opentelemetry::layer().with_tracer(tracer.tracer(service));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard {
        tracer: Some(tracer),
    })
}
