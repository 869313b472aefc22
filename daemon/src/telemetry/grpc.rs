//! `rpc.server.call.duration`: a tower layer around the gRPC server that records each
//! call's duration in seconds, by method and status code (OpenTelemetry RPC semantic
//! conventions). A server-streaming call (Apply, Rollback, Watch) is measured to its
//! response headers, when the stream starts; its events are the rollout's own metrics.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use opentelemetry::{
    KeyValue,
    metrics::{Histogram, Meter},
};

/// Wraps a service with [`CallDuration`].
#[derive(Clone)]
pub(crate) struct CallDurationLayer {
    histogram: Histogram<f64>,
}

impl CallDurationLayer {
    /// The layer, its histogram made from `meter`.
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            histogram: super::metrics::seconds(
                meter,
                "rpc.server.call.duration",
                "Duration of a gRPC call to its response headers",
            ),
        }
    }
}

impl<S> tower::Layer<S> for CallDurationLayer {
    type Service = CallDuration<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallDuration {
            inner,
            histogram: self.histogram.clone(),
        }
    }
}

/// Records each call's duration.
#[derive(Clone)]
pub(crate) struct CallDuration<S> {
    inner: S,
    histogram: Histogram<f64>,
}

/// gRPC's `UNIMPLEMENTED`: a method nobody serves, recorded as `_OTHER` so that made-up
/// paths cannot add series.
const UNIMPLEMENTED: &str = "12";

impl<S, B, R> tower::Service<http::Request<B>> for CallDuration<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().trim_start_matches('/').to_owned();
        let start = Instant::now();
        let call = self.inner.call(request);
        let histogram = self.histogram.clone();
        Box::pin(async move {
            let response = call.await;
            // A status in the headers is a trailers-only answer (an error, or UNIMPLEMENTED);
            // none means the call went on (OK so far).
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "13".to_owned(),
            };
            let method = if code == UNIMPLEMENTED {
                "_OTHER".to_owned()
            } else {
                method
            };
            histogram.record(
                start.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.method", method),
                    KeyValue::new("rpc.response.status_code", code),
                ],
            );
            response
        })
    }
}
