//! Backups of tenants with their databases' own tools, taken before risky migrations (as a
//! fleet's `[fleets.NAME.backup]` policy says) or on request, recorded in the control store,
//! kept up to `keep` per tenant, and restored under the tenant lock (docs/backups.md).
//!
//! | file | what |
//! | --- | --- |
//! | `tools.rs` | each dialect's tools, where they are found, their versions, the check at start |
//! | `dump.rs` | one backup file: the tool run with the credentials in its environment, hashed |
//! | `take.rs` | [`Backups::take`]: where the file goes, the record, the metrics, retention |
//! | `restore.rs` | [`Backups::restore`]: a backup read back under the tenant lock, verified, logged |

mod dump;
mod restore;
mod take;
mod tools;

use std::{collections::HashMap, path::Path, sync::Arc};

pub use restore::RestoreError;
pub(crate) use restore::{Restored, newest_applied};
pub(crate) use take::Occasion;
pub(crate) use tools::check_fleets;

use crate::{store::Store, telemetry::BackupMetrics};

/// Why a backup was not taken, or a restore not done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The tool is not installed where the daemon looks for it.
    #[error("{tools} not found in {looked_in} (install the {package} package)")]
    ToolMissing {
        /// The executable names looked for.
        tools: String,
        /// `PATH`, or the fleet's `tools_dir`.
        looked_in: String,
        /// The Debian package that holds it.
        package: &'static str,
    },
    /// At start: a fleet whose policy takes backups lacks its tool.
    #[error("fleet {fleet:?} takes backups (when = {when:?}) but {source}")]
    FleetTool {
        /// The fleet.
        fleet: String,
        /// Its policy's `when`.
        when: &'static str,
        /// Which tool is missing.
        source: Box<BackupError>,
    },
    /// The backup directory or file could not be made, written or read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the daemon was doing.
        what: &'static str,
        /// The path.
        path: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The tool ran and failed; its own words (passwords masked).
    #[error("{tool} failed: {message}")]
    ToolFailed {
        /// The tool.
        tool: &'static str,
        /// The end of its standard error, and its exit status.
        message: String,
    },
    /// The tool ran past the policy's `timeout` and was killed.
    #[error("{tool} ran past the backup timeout ({after_ms} ms) and was stopped")]
    Timeout {
        /// The tool.
        tool: &'static str,
        /// The timeout, ms.
        after_ms: u64,
    },
    /// The tenant's DSN does not say where it is in a form the tools take.
    #[error("the tenant's DSN cannot be given to its database's tools")]
    Dsn,
    /// The tenant lock did not come, or the tenant could not be read.
    #[error(transparent)]
    Db(#[from] crate::dialect::DbError),
    /// The control store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl BackupError {
    /// An [`BackupError::Io`] maker for `what` on `path`.
    fn io(what: &'static str, path: &Path) -> impl Fn(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self::Io {
            what,
            path: path.clone(),
            source,
        }
    }
}

/// Backups: taken, recorded, kept and restored, for rollouts and for requests alike.
pub(crate) struct Backups {
    store: Arc<Store>,
    metrics: BackupMetrics,
    /// Backups running at once per fleet and database server (`concurrency`), by
    /// `fleet|host` (`fleet|directory` for SQLite files).
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl Backups {
    /// Backups recorded in `store`, measured with `meter`'s instruments.
    pub(crate) fn new(store: Arc<Store>, meter: &opentelemetry::metrics::Meter) -> Self {
        Self {
            store,
            metrics: BackupMetrics::new(meter),
            slots: std::sync::Mutex::default(),
        }
    }

    /// The semaphore of `key`, made with `permits` the first time.
    fn slot(&self, key: String, permits: usize) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots
            .entry(key)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(permits.max(1))))
            .clone()
    }

    /// Deletes backup `record`'s file (a file already gone is no error) and its record.
    ///
    /// # Errors
    /// [`BackupError::Io`] when the file exists and cannot be removed (the record stays);
    /// [`BackupError::Store`].
    pub(crate) async fn delete(
        &self,
        record: &crate::model::BackupRecord,
    ) -> Result<bool, BackupError> {
        let path = Path::new(&record.path);
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io("deleting the backup file", path)(e)),
        }
        Ok(self.store.delete_backup(&record.id).await?)
    }
}
