//! An OTLP receiver in-process: a tonic server implementing the OpenTelemetry collector's
//! trace and metrics services, keeping every export request it is sent.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::{
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use tonic::{Request, Response, Status};

/// What the receiver was sent.
#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

/// A running receiver on `127.0.0.1:<port>`; stops when dropped.
pub struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Collector(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = self.0.lock().map_err(|_| Status::internal("poisoned"))?;
        received.traces.push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut received = self.0.lock().map_err(|_| Status::internal("poisoned"))?;
        received.metrics.push(request.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl OtlpReceiver {
    /// Starts a receiver on a free port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Received::default()));
        let collector = Collector(received.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .add_service(MetricsServiceServer::new(collector))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Ok(Self {
            endpoint,
            received,
            task,
        })
    }

    /// Every span received so far, as `(name, the whole span in Debug form)`.
    pub fn spans(&self) -> Vec<(String, String)> {
        self.span_list()
            .into_iter()
            .map(|s| (s.name.clone(), format!("{s:?}")))
            .collect()
    }

    /// Every span received so far, as sent.
    pub fn span_list(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }

    /// Every metrics export received so far, in the order they came.
    pub fn metric_exports(&self) -> Vec<ExportMetricsServiceRequest> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received.metrics.clone()
    }

    /// Everything received so far (traces and metrics with their resources), in Debug form.
    pub fn everything(&self) -> String {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        format!("{:?}\n{:?}", received.traces, received.metrics)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
