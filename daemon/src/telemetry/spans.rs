//! Span helpers: the gRPC server span that continues a caller's W3C trace context, the
//! semantic-convention value of a dialect, and marking a span failed.

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator as _},
    trace::{Status, TraceContextExt as _, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::model::DialectKind;

/// `db.system.name` of a dialect (OpenTelemetry database semantic conventions).
pub(crate) fn db_system_name(dialect: DialectKind) -> &'static str {
    match dialect {
        DialectKind::Postgres => "postgresql",
        DialectKind::Mysql => "mysql",
        DialectKind::Sqlite => "sqlite",
    }
}

/// Marks `span` failed: status error with `message`, and `error.type` = `error_type` (a
/// stable code such as `migration_failed`).
pub(crate) fn fail(span: &Span, error_type: &str, message: &str) {
    span.set_attribute("error.type", error_type.to_owned());
    span.set_status(Status::error(message.to_owned()));
}

/// Records `span`'s OpenTelemetry trace id in its `trace_id` field (declared empty), so
/// every log record inside it carries it. Nothing without an OpenTelemetry layer.
pub(crate) fn record_trace_id(span: &Span) {
    let id = span.context().span().span_context().trace_id();
    if id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}

/// Headers as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The server span of one gRPC call (`rpc.system` `grpc`, `rpc.method`, `rpc.service`,
/// `server.address`), a child of the caller's span when the request carries a W3C
/// `traceparent` (and `tracestate`). Everything the call does, including a rollout that
/// runs on after it returns, is under it.
pub(crate) fn server_span(request: &http::Request<()>) -> Span {
    // Only a served method names the span: a made-up path is `_OTHER`, never echoed.
    let path = super::grpc::method_label(request.uri().path());
    let path: &str = &path;
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let address = request
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
        })
        .unwrap_or_default();
    let span = tracing::info_span!(
        "grpc",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        server.address = address,
        trace_id = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // Fails only when the span is already started, which it is not.
    let _ = span.set_parent(parent);
    record_trace_id(&span);
    span
}
