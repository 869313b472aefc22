//! The engine's one error type: every refusal a variant of its own that keeps its cause as
//! its source, classified once into a [`Reason`] (which the API sends as
//! `google.rpc.ErrorInfo`) and an [`ErrorKind`] (which the API maps to a gRPC code).

use std::time::Duration;

pub use super::reason::{ErrorKind, Reason, Subject};
use crate::{
    config::RegistrationError,
    dialect::DbError,
    fleet::{DiscoveryError, FleetError, SetError},
    migrate::RepairError,
    model::{DialectKind, MigrationKey, Version},
    rollout::RunnerError,
    store::StoreError,
};

/// A request-level failure. Per-tenant failures of a rollout are events, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A field the request must set is empty, e.g. the fleet.
    #[error("{0} is required")]
    Missing(&'static str),
    /// Fleet or tenant lookups and migration sets.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A database operation on one tenant.
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Tenant {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// The database error (never contains the DSN).
        source: DbError,
    },
    /// The fleet's set is not the one the request was planned with (`expected_set_digest`).
    #[error(
        "fleet {fleet:?}: the migration set changed since it was planned (digest {expected} \
         expected, {now} now): plan again"
    )]
    SetChanged {
        /// The fleet.
        fleet: String,
        /// The digest the request expected.
        expected: String,
        /// The set's digest now.
        now: String,
    },
    /// An apply or baseline target that is a repeatable's key (`R__…`), not a place among
    /// the numbered versions.
    #[error("fleet {fleet:?}: {version} is a repeatable migration, not a version to go up to")]
    RepeatableTarget {
        /// The fleet.
        fleet: String,
        /// The target given.
        version: MigrationKey,
    },
    /// A rollback target that is a repeatable's key: repeatables are never rolled back.
    #[error(
        "fleet {fleet:?}: {version} is a repeatable migration, not a version to roll back to \
         (repeatables are never rolled back)"
    )]
    RepeatableRollbackTarget {
        /// The fleet.
        fleet: String,
        /// The target given.
        version: MigrationKey,
    },
    /// A target version that names no migration of the fleet's set.
    #[error("fleet {fleet:?} has no migration with version {version}")]
    UnknownVersion {
        /// The fleet.
        fleet: String,
        /// The target given.
        version: Version,
    },
    /// A rollback target above the set's latest version: it would roll back nothing anywhere
    /// (as an apply to it is refused).
    #[error(
        "fleet {fleet:?}: rollback to version {version} would roll back nothing: the set's \
         latest version is {}",
        latest
            .as_ref()
            .map_or_else(|| "none (the set is empty)".to_owned(), |l| l.to_string())
    )]
    NothingToRollBack {
        /// The fleet.
        fleet: String,
        /// The target given.
        version: Version,
        /// The set's latest version; `None` for an empty set (boxed: the error stays small
        /// on every other path).
        latest: Option<Box<Version>>,
    },
    /// A rollout strategy out of range.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// `transaction = "tenant"` on a dialect without transactional DDL.
    #[error(
        "fleet {fleet:?}: transaction = \"tenant\" needs transactional DDL, which {dialect} \
         does not have: use \"migration\""
    )]
    GroupedWithoutTransactionalDdl {
        /// The fleet.
        fleet: String,
        /// Its dialect.
        dialect: DialectKind,
    },
    /// `transaction = "tenant"` over a set with a script that runs outside a transaction.
    #[error(
        "fleet {fleet:?}: transaction = \"tenant\" cannot hold version {version} ({name}), \
         which runs outside a transaction: use \"migration\""
    )]
    GroupedOutsideTransaction {
        /// The fleet.
        fleet: String,
        /// The version whose script runs outside a transaction.
        version: MigrationKey,
        /// Its migration's name.
        name: String,
    },
    /// An adoption that does not say whose history to read.
    #[error(
        "adopt needs the tool whose history to read: sqlx, diesel, golang-migrate, dbmate, \
         flyway or refinery"
    )]
    AdoptNeedsFormat,
    /// A `page_token` this daemon did not hand out.
    #[error("page_token {0:?} is not one of ours")]
    PageToken(String),
    /// A watch from past the end of a rollout that ended (or above `i64::MAX`).
    #[error("after_seq {after} is past the rollout's last event ({last})")]
    PastLastEvent {
        /// The rollout.
        rollout: String,
        /// The sequence number asked for.
        after: u64,
        /// The rollout's last event.
        last: u64,
    },
    /// A registration's tenant id, schema or label that is not a valid name
    /// (`model::check_id`, `check_identifier`, `check_label` say why).
    #[error("{what}{}{message}", if what.is_empty() { "" } else { ": " })]
    InvalidName {
        /// Which field: `tenant`, `schema`, or empty for a label (its sentence names it).
        what: &'static str,
        /// The rule it breaks.
        message: String,
    },
    /// A registration's DSN that the fleet's registration policy refuses.
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Registration {
        /// The fleet.
        fleet: String,
        /// The tenant being registered.
        tenant: String,
        /// The rule it breaks (boxed: the error stays small on every other path).
        source: Box<RegistrationError>,
    },
    /// A registration whose DSN names the database of a tenant of another fleet.
    #[error(
        "fleet {fleet:?}, tenant {tenant:?}: the DSN names the database of tenant {other:?} \
         of fleet {other_fleet:?}"
    )]
    DatabaseTaken {
        /// The fleet.
        fleet: String,
        /// The tenant being registered.
        tenant: String,
        /// The tenant whose database it is.
        other: String,
        /// That tenant's fleet.
        other_fleet: String,
    },
    /// A registration whose target the fleet cannot use (a DSN of another dialect, that does
    /// not parse, or a schema on a dialect without schemas).
    #[error(transparent)]
    InvalidTarget(Box<FleetError>),
    /// A repair refused on one tenant: nothing to repair, or the version not in the set.
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Repair {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// Why.
        source: RepairError,
    },
    /// A refresh of a fleet that has no discovery query.
    #[error("fleet {0:?} has no discovery query")]
    NoDiscovery(String),
    /// A rollout that could not be changed: its state does not allow the action, its set
    /// changed, its fleet is gone, or tenants need repair first.
    #[error(transparent)]
    Rollout(RunnerError),
    /// The daemon is shutting down: it starts no new rollout, and ends every event stream
    /// with this error.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// As many rollouts as `[limits] max_running_rollouts` run here already.
    #[error(
        "{limit} rollouts run on this daemon already ([limits] max_running_rollouts); \
         start this one when one ends"
    )]
    TooManyRollouts {
        /// The limit.
        limit: usize,
    },
    /// As many rollouts of one fleet as `[limits] max_running_rollouts_per_fleet` run here.
    #[error(
        "{limit} rollouts of fleet {fleet:?} run on this daemon already ([limits] \
         max_running_rollouts_per_fleet); start this one when one ends"
    )]
    TooManyInFleet {
        /// The fleet.
        fleet: String,
        /// The limit.
        limit: usize,
    },
    /// As many rollouts started by one identity as `[limits]
    /// max_running_rollouts_per_identity` run here.
    #[error(
        "{limit} rollouts started by {identity:?} run on this daemon already ([limits] \
         max_running_rollouts_per_identity); start this one when one ends"
    )]
    TooManyForIdentity {
        /// The identity's name.
        identity: String,
        /// The limit.
        limit: usize,
    },
    /// A rollout of this fleet and direction runs and another waits its turn already.
    #[error(
        "fleet {fleet:?}: a {direction} rollout runs on this daemon and another waits its \
         turn already; start this one when one ends"
    )]
    LineFull {
        /// The fleet.
        fleet: String,
        /// `up` or `down`.
        direction: &'static str,
    },
    /// No rollout has that id.
    #[error("rollout {0:?} not found")]
    UnknownRollout(String),
    /// The control store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fleet's discovery query could not be read.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// No backup of the fleet has the id.
    #[error("fleet {fleet:?} has no backup {id:?}")]
    UnknownBackup {
        /// The fleet.
        fleet: String,
        /// The id asked for.
        id: String,
    },
    /// A restore names a backup of another tenant.
    #[error("backup {id:?} is of tenant {of:?}, not {tenant:?}")]
    BackupOfAnotherTenant {
        /// The fleet.
        fleet: String,
        /// The tenant the request names.
        tenant: String,
        /// The backup.
        id: String,
        /// The tenant it is of.
        of: String,
    },
    /// A restore of a backup that failed when taken: it has no file.
    #[error("backup {id:?} of tenant {tenant:?} failed when taken; it has nothing to restore")]
    BackupNotTaken {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// The backup.
        id: String,
    },
    /// A restore of a tenant that a rollout not yet over (pending, running, paused) holds.
    #[error(
        "fleet {fleet:?}, tenant {tenant:?} is part of rollout {rollout} which is not over: \
         wait for it or cancel it, then restore"
    )]
    TenantInRollout {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// The rollout.
        rollout: String,
    },
    /// A backup of one tenant was not taken.
    #[error("fleet {fleet:?}, tenant {tenant:?}: backup: {source}")]
    Backup {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// Why.
        source: Box<crate::backup::BackupError>,
    },
    /// A restore of one tenant did not happen or did not check out.
    #[error("fleet {fleet:?}, tenant {tenant:?}: restore: {source}")]
    Restore {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// Why.
        source: Box<crate::backup::RestoreError>,
    },
    /// A set published, tagged or read through the API was refused.
    #[error(transparent)]
    Set(#[from] SetError),
}

/// A rollout strategy out of range (the request's, over the fleet's defaults).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// Concurrency outside 1 to [`super::MAX_CONCURRENCY`].
    #[error("concurrency {value} is outside 1 to {max}")]
    Concurrency {
        /// The concurrency asked for.
        value: u32,
        /// The most allowed.
        max: usize,
    },
    /// `per_host_concurrency = 0`.
    #[error("per_host_concurrency must be at least 1 (or unset)")]
    PerHostZero,
    /// `wave_size = 0` or `0%`.
    #[error("wave_size must be at least 1 (or unset for one wave)")]
    WaveSizeZero,
    /// A pause between waves above `[limits] max_pause_between_waves`.
    #[error(
        "pause_between_waves {} is above [limits] max_pause_between_waves ({})",
        humantime::format_duration(*pause),
        humantime::format_duration(*max)
    )]
    PauseTooLong {
        /// The pause asked for.
        pause: Duration,
        /// The limit.
        max: Duration,
    },
    /// A canary the request asks for that is more than the selected tenants (the fleet's
    /// own default is cut to the selection instead).
    #[error("fleet {fleet:?}: a canary of {canary} is more than the {tenants} selected tenant(s)")]
    CanaryTooLarge {
        /// The fleet.
        fleet: String,
        /// The canary asked for.
        canary: u32,
        /// Tenants selected.
        tenants: usize,
    },
    /// A canary selector that matches none of the selected tenants.
    #[error("the canary selector {selector} matches none of the {tenants} selected tenant(s)")]
    CanaryMatchesNone {
        /// The canary selector, in its canonical syntax.
        selector: String,
        /// Tenants selected.
        tenants: usize,
    },
}

impl From<RunnerError> for EngineError {
    /// A rollout that could not be started or changed: an unknown id and a store failure
    /// are the engine's own variants, the rest keep the runner's error.
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::NotFound(id) => Self::UnknownRollout(id),
            RunnerError::Store(e) => Self::Store(e),
            other => Self::Rollout(other),
        }
    }
}

impl EngineError {
    /// The kind of failure: the kind of its [`Reason`].
    pub fn kind(&self) -> ErrorKind {
        self.reason().kind()
    }

    /// A repair failure on `tenant` of `fleet`, naming both.
    pub(super) fn repair(fleet: &str, tenant: &str, e: RepairError) -> Self {
        match e {
            RepairError::Db(source) => Self::Tenant {
                fleet: fleet.to_owned(),
                tenant: tenant.to_owned(),
                source,
            },
            source => Self::Repair {
                fleet: fleet.to_owned(),
                tenant: tenant.to_owned(),
                source,
            },
        }
    }
}
