//! The backups' instruments (docs/backups.md): how many were taken or failed, their bytes
//! and the tools' wall time, by fleet.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter},
};

use super::metrics::seconds;

/// `avocet.backups` (Prometheus `avocet_backups_total{fleet,state}`), `avocet.backup.written`
/// (`avocet_backup_written_bytes_total{fleet}`) and `avocet.backup.duration`
/// (`avocet_backup_duration_seconds{fleet,state}`).
#[derive(Clone)]
pub(crate) struct BackupMetrics {
    backups: Counter<u64>,
    bytes: Counter<u64>,
    duration: Histogram<f64>,
}

impl BackupMetrics {
    /// The instruments, from `meter`.
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            backups: meter
                .u64_counter("avocet.backups")
                .with_unit("{backup}")
                .with_description("Backups of tenants, by state: taken or failed")
                .build(),
            bytes: meter
                .u64_counter("avocet.backup.written")
                .with_unit("By")
                .with_description("Bytes of backup files written")
                .build(),
            duration: seconds(
                meter,
                "avocet.backup.duration",
                "Wall time of one backup's tool",
            ),
        }
    }

    /// One backup of `fleet` ended in `state` (`taken` or `failed`) after `seconds`, its
    /// file `bytes` long (0 for a failure).
    pub(crate) fn backup(&self, fleet: &str, state: &str, bytes: u64, seconds: f64) {
        let attributes = [
            KeyValue::new("fleet", fleet.to_owned()),
            KeyValue::new("state", state.to_owned()),
        ];
        self.backups.add(1, &attributes);
        self.duration.record(seconds, &attributes);
        if bytes > 0 {
            self.bytes
                .add(bytes, &[KeyValue::new("fleet", fleet.to_owned())]);
        }
    }
}
