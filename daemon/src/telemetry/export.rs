//! One daemon's metrics pipeline: its own meter provider (so daemons in one process, as in
//! the tests, never mix their numbers), read by a Prometheus exporter for `/metrics` and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set,
//! pushed over OTLP/gRPC every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
//!
//! The gauges (fleet health, rollouts by state, the connection budget) are observed from an
//! [`Observation`] the caller takes just before reading them ([`MetricsExport::observe`]).

use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::{
    KeyValue,
    metrics::{Meter, MeterProvider as _, ObservableGauge},
};
use opentelemetry_sdk::{Resource, metrics::SdkMeterProvider};
use prometheus::{Encoder as _, TextEncoder};

use crate::model::Observation;

/// Why the metrics pipeline could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The Prometheus exporter could not be built.
    #[error("prometheus exporter: {0}")]
    Prometheus(#[source] opentelemetry_sdk::error::OTelSdkError),
    /// The OTLP metric exporter could not be built from the `OTEL_*` settings.
    #[error("OTLP metric exporter: {0}")]
    Otlp(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The metrics could not be written in the Prometheus text format.
    #[error("encoding metrics: {0}")]
    Encode(#[source] prometheus::Error),
}

/// What one gauge reports of an observation: values with their attributes.
type Read = fn(&Observation) -> Vec<(u64, Vec<KeyValue>)>;

/// One daemon's meter provider, its Prometheus registry and its last observation.
pub(crate) struct MetricsExport {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    observed: Arc<Mutex<Observation>>,
    /// Metrics also go out over OTLP.
    pushes: bool,
    /// Kept so their callbacks stay registered for the provider's life.
    _gauges: Vec<ObservableGauge<u64>>,
    _latest: ObservableGauge<i64>,
    _lock_timeout: ObservableGauge<f64>,
}

impl MetricsExport {
    /// The pipeline of `service`; OTLP export when the `OTEL_*` environment asks for it.
    ///
    /// # Errors
    /// [`TelemetryError`] when an exporter cannot be built.
    pub(crate) fn new(service: &'static str) -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(TelemetryError::Prometheus)?;
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let mut builder = SdkMeterProvider::builder()
            .with_reader(prometheus)
            .with_resource(resource);
        let pushes = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        if pushes {
            let otlp = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()
                .map_err(TelemetryError::Otlp)?;
            builder = builder.with_periodic_exporter(otlp);
        }
        let provider = builder.build();
        let meter = provider.meter("avocet");
        let observed = Arc::new(Mutex::new(Observation::default()));
        let gauges = GAUGES
            .iter()
            .map(|&(name, unit, description, read)| {
                let observed = observed.clone();
                meter
                    .u64_observable_gauge(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |gauge| {
                        let o = observed.lock().unwrap_or_else(PoisonError::into_inner);
                        for (value, attributes) in read(&o) {
                            gauge.observe(value, &attributes);
                        }
                    })
                    .build()
            })
            .collect();
        let latest = {
            let observed = observed.clone();
            meter
                .i64_observable_gauge("avocet.fleet.latest_version")
                .with_unit("{version}")
                .with_description("The latest version of the fleet's migration set")
                .with_callback(move |gauge| {
                    let o = observed.lock().unwrap_or_else(PoisonError::into_inner);
                    for f in &o.fleets {
                        // A dotted version (Flyway's `1.2.3`) is no number: not observed.
                        if let Some(v) = f.latest_version.as_ref().and_then(|v| v.as_i64()) {
                            gauge.observe(v, &[KeyValue::new("fleet", f.fleet.clone())]);
                        }
                    }
                })
                .build()
        };
        let lock_timeout = {
            let observed = observed.clone();
            meter
                .f64_observable_gauge("avocet.fleet.lock_timeout")
                .with_unit("s")
                .with_description("The fleet's lock_timeout, for comparing lock waits with")
                .with_callback(move |gauge| {
                    let o = observed.lock().unwrap_or_else(PoisonError::into_inner);
                    for f in &o.fleets {
                        gauge.observe(f.lock_timeout_s, &fleet(&f.fleet));
                    }
                })
                .build()
        };
        Ok(Self {
            provider,
            registry,
            observed,
            pushes,
            _gauges: gauges,
            _latest: latest,
            _lock_timeout: lock_timeout,
        })
    }

    /// The meter the daemon's instruments are made from.
    pub(crate) fn meter(&self) -> Meter {
        self.provider.meter("avocet")
    }

    /// True when metrics are also pushed over OTLP (the gauges then need fresh
    /// observations without a scrape).
    pub(crate) fn pushes(&self) -> bool {
        self.pushes
    }

    /// Makes `observation` what the gauges report from now on.
    pub(crate) fn observe(&self, observation: Observation) {
        *self.observed.lock().unwrap_or_else(PoisonError::into_inner) = observation;
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    ///
    /// # Errors
    /// [`TelemetryError::Encode`] when a metric cannot be written.
    pub(crate) fn prometheus_text(&self) -> Result<String, TelemetryError> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(TelemetryError::Encode)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Pushes what is pending over OTLP and stops the exporters.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

fn fleet(name: &str) -> Vec<KeyValue> {
    vec![KeyValue::new("fleet", name.to_owned())]
}

/// The gauges: name, unit, description, and what each reads of an observation.
const GAUGES: [(&str, &str, &str, Read); 13] = [
    (
        "avocet.fleet.broken",
        "",
        "1 while the fleet's migration set does not load (the fleet is broken), else 0",
        |o| {
            o.fleets
                .iter()
                .map(|f| (u64::from(f.broken), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.fleet.tenants",
        "{tenant}",
        "Tenants registered in the fleet",
        |o| {
            o.fleets
                .iter()
                .map(|f| (f.tenants.into(), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.fleet.tenants.behind",
        "{tenant}",
        "Tenants whose last reading was below the set's latest version",
        |o| {
            o.fleets
                .iter()
                .map(|f| (f.behind.into(), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.fleet.tenants.failed",
        "{tenant}",
        "Tenants whose last reading had a failed or running record",
        |o| {
            o.fleets
                .iter()
                .map(|f| (f.failed.into(), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.fleet.tenants.unreachable",
        "{tenant}",
        "Tenants whose last reading was an error",
        |o| {
            o.fleets
                .iter()
                .map(|f| (f.unreachable.into(), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.fleet.schema_drift_tenants",
        "{tenant}",
        "Tenants whose last census put them in a drift class (docs/census.md)",
        |o| {
            o.fleets
                .iter()
                .map(|f| (f.drifted.into(), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.fleet.tenants.unknown",
        "{tenant}",
        "Tenants never read",
        |o| {
            o.fleets
                .iter()
                .map(|f| (f.unknown.into(), fleet(&f.fleet)))
                .collect()
        },
    ),
    (
        "avocet.rollouts",
        "{rollout}",
        "Rollouts kept by the control store, by state",
        |o| {
            o.rollouts
                .iter()
                .map(|r| {
                    let mut attributes = fleet(&r.fleet);
                    attributes.push(KeyValue::new("state", r.state.as_str()));
                    (r.count.into(), attributes)
                })
                .collect()
        },
    ),
    (
        "avocet.rollout.tenants",
        "{tenant}",
        "Tenants of pending, running or paused rollouts, by work state",
        |o| {
            o.rollout_tenants
                .iter()
                .map(|w| {
                    let mut attributes = fleet(&w.fleet);
                    attributes.push(KeyValue::new("state", w.state.as_str()));
                    (w.count.into(), attributes)
                })
                .collect()
        },
    ),
    (
        "avocet.connections.limit",
        "{connection}",
        "Connections the daemon may hold open at once (max_connections)",
        |o| vec![(o.budget.limit.into(), Vec::new())],
    ),
    (
        "avocet.connections.open",
        "{connection}",
        "Tenant connections open, in use or idle",
        |o| vec![(o.budget.open.into(), Vec::new())],
    ),
    (
        "avocet.connections.in_use",
        "{connection}",
        "Tenant connections admitted to running operations",
        |o| vec![(o.budget.in_use.into(), Vec::new())],
    ),
    (
        "avocet.connections.waiting",
        "{operation}",
        "Operations waiting for the connection budget",
        |o| vec![(o.budget.waiting.into(), Vec::new())],
    ),
];
