//! The engine's instruments, recorded in memory as events happen (no I/O on the hot path):
//! durations in seconds, per OpenTelemetry's semantic conventions.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter},
};

/// Histogram bucket bounds in seconds, from 5 ms to 30 min, so long migrations and 30 s
/// lock waits do not all land in one top bucket.
pub(super) const DURATION_BOUNDS_S: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0,
];

/// A duration histogram in seconds with [`DURATION_BOUNDS_S`].
pub(super) fn seconds(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BOUNDS_S.to_vec())
        .build()
}

/// The engine's instruments, created once per daemon from its meter.
#[derive(Clone)]
pub(crate) struct Metrics {
    migration: Histogram<f64>,
    migrations: Counter<u64>,
    tenant: Histogram<f64>,
    lock_wait: Histogram<f64>,
    lock_retries: Counter<u64>,
    rollouts: Counter<u64>,
}

/// One finished migration step, as [`Metrics::migration`] records it.
pub(crate) struct MigrationDone<'a> {
    /// The fleet.
    pub(crate) fleet: &'a str,
    /// `postgres`, `mysql` or `sqlite`.
    pub(crate) dialect: &'a str,
    /// `up` or `down`.
    pub(crate) direction: &'a str,
    /// `applied`, `rolled_back` or `failed`.
    pub(crate) status: &'a str,
    /// The tenant, only when its fleet has `metrics_tenant_labels`.
    pub(crate) tenant: Option<&'a str>,
    /// Wall time, seconds.
    pub(crate) seconds: f64,
}

impl Metrics {
    /// The instruments, from `meter`.
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            migration: seconds(
                meter,
                "avocet.migration.duration",
                "Wall time of one migration step",
            ),
            migrations: meter
                .u64_counter("avocet.migrations")
                .with_unit("{migration}")
                .with_description("Migration steps finished")
                .build(),
            tenant: seconds(
                meter,
                "avocet.tenant.duration",
                "Wall time of one tenant in a rollout",
            ),
            lock_wait: seconds(
                meter,
                "avocet.lock.wait",
                "Time spent waiting for a tenant lock",
            ),
            lock_retries: meter
                .u64_counter("avocet.ddl.lock_retries")
                .with_unit("{retry}")
                .with_description(
                    "Migrations retried after a statement gave up waiting for a lock \
                     (ddl_lock_timeout)",
                )
                .build(),
            rollouts: meter
                .u64_counter("avocet.rollouts.started")
                .with_unit("{rollout}")
                .with_description("Rollouts started")
                .build(),
        }
    }

    /// One migration step finished.
    pub(crate) fn migration(&self, done: &MigrationDone<'_>) {
        let mut attributes = vec![
            KeyValue::new("fleet", done.fleet.to_owned()),
            KeyValue::new("dialect", done.dialect.to_owned()),
            KeyValue::new("direction", done.direction.to_owned()),
            KeyValue::new("status", done.status.to_owned()),
        ];
        if let Some(tenant) = done.tenant {
            attributes.push(KeyValue::new("tenant", tenant.to_owned()));
        }
        self.migration.record(done.seconds, &attributes);
        self.migrations.add(1, &attributes);
    }

    /// One tenant finished; `outcome` is `succeeded`, `failed`, `skipped` or `planned`.
    pub(crate) fn tenant(&self, fleet: &str, direction: &str, outcome: &str, seconds: f64) {
        self.tenant.record(
            seconds,
            &[
                KeyValue::new("fleet", fleet.to_owned()),
                KeyValue::new("direction", direction.to_owned()),
                KeyValue::new("outcome", outcome.to_owned()),
            ],
        );
    }

    /// A lock wait ended, acquired or timed out; `tenant` only when the fleet has
    /// `metrics_tenant_labels`.
    pub(crate) fn lock_wait(
        &self,
        fleet: &str,
        dialect: &str,
        acquired: bool,
        tenant: Option<&str>,
        seconds: f64,
    ) {
        let mut attributes = vec![
            KeyValue::new("fleet", fleet.to_owned()),
            KeyValue::new("dialect", dialect.to_owned()),
            KeyValue::new("acquired", acquired.to_string()),
        ];
        if let Some(tenant) = tenant {
            attributes.push(KeyValue::new("tenant", tenant.to_owned()));
        }
        self.lock_wait.record(seconds, &attributes);
    }

    /// A migration's statement gave up waiting for a lock and the migration will run again
    /// (`avocet_ddl_lock_retries_total`).
    pub(crate) fn lock_retry(&self, fleet: &str, dialect: &str) {
        self.lock_retries.add(
            1,
            &[
                KeyValue::new("fleet", fleet.to_owned()),
                KeyValue::new("dialect", dialect.to_owned()),
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

/// `avocet.auth.failures` (Prometheus: `avocet_auth_failures_total`): calls refused by the
/// gate, labelled `reason` = `token`, `certificate`, `missing` or `locked_out` (issue 25,
/// finding 16).
pub(crate) fn auth_failures(meter: &Meter) -> Counter<u64> {
    meter
        .u64_counter("avocet.auth.failures")
        .with_unit("{call}")
        .with_description("Calls refused by authentication, by reason")
        .build()
}
