//! The admin HTTP listener (`admin_listen`): `/metrics` in the Prometheus text exposition
//! format, `/livez` and `/readyz`. No authentication: it serves numbers and states, never
//! a DSN, and is meant for the scraper and the orchestrator's probes.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{engine::Engine, model::Observation, telemetry::MetricsExport};

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the admin handlers read.
#[derive(Clone)]
pub(crate) struct Admin {
    /// The engine once it is open (configuration and sets loaded, control store open);
    /// `None` while the daemon starts.
    pub(crate) engine: watch::Receiver<Option<Arc<Engine>>>,
    /// The daemon's metrics.
    pub(crate) export: Arc<MetricsExport>,
    /// Cancelled when the daemon begins to shut down: no longer ready.
    pub(crate) stopping: CancellationToken,
}

/// Serves the admin endpoints on `listener` (the server's, which closes connections that
/// stay silent past `first_byte_timeout`) until `stop` is cancelled.
///
/// # Errors
/// When serving fails.
pub(crate) async fn serve<L>(
    listener: L,
    admin: Admin,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(admin);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// Every metric. The gauges are observed afresh from the control store first; when it
/// cannot be read they are left out (never served stale), the rest is served.
async fn metrics(State(admin): State<Admin>) -> Response {
    let engine = admin.engine.borrow().clone();
    let observation = match engine {
        Some(engine) => engine.observe().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: the fleets' health gauges are left out");
            Observation::default()
        }),
        None => Observation::default(),
    };
    admin.export.observe(observation);
    match admin.export.prometheus_text() {
        Ok(text) => ([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The process answers.
async fn livez() -> &'static str {
    "ok\n"
}

/// 200 once the engine is open, every set loads and the control store answers; 503 with
/// the reason before, during shutdown, or when one of these fails.
async fn readyz(State(admin): State<Admin>) -> Response {
    if admin.stopping.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let engine = admin.engine.borrow().clone();
    let Some(engine) = engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    match engine.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
