//! The engine's one error type, and the kind of each failure that the API maps to a status.

use crate::{
    dialect::DbError,
    fleet::{DiscoveryError, FleetError},
    migrate::RepairError,
    rollout::RunnerError,
    store::StoreError,
};

/// What kind of failure an [`EngineError`] is; the API maps each to one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or out of range.
    InvalidArgument,
    /// A fleet or tenant does not exist.
    NotFound,
    /// The system is not in the state the request needs.
    FailedPrecondition,
    /// What the request would create exists already, e.g. a tenant id.
    AlreadyExists,
    /// A tenant could not be reached.
    Unavailable,
    /// A wait ran out, such as a tenant lock.
    DeadlineExceeded,
    /// The daemon is shutting down.
    Aborted,
    /// A limit of the daemon is reached, such as its running rollouts.
    ResourceExhausted,
    /// A database operation failed unexpectedly.
    Internal,
}

/// A request-level failure. Per-tenant failures of a rollout are events, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A value out of range for this fleet, e.g. a target version that is not in the set.
    #[error("{0}")]
    InvalidArgument(String),
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
    /// The system is not in a state the request needs, e.g. nothing to repair.
    #[error("{0}")]
    FailedPrecondition(String),
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
}

impl EngineError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument(_) | Self::Fleet(FleetError::TooManyIds { .. }) => {
                ErrorKind::InvalidArgument
            }
            Self::Fleet(
                FleetError::UnknownFleet(_)
                | FleetError::UnknownTenant { .. }
                | FleetError::NoMatch { .. },
            ) => ErrorKind::NotFound,
            Self::Fleet(FleetError::DuplicateTenant { .. }) => ErrorKind::AlreadyExists,
            Self::Fleet(_) | Self::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            Self::Tenant { source, .. } => match source {
                DbError::LockTimeout { .. } => ErrorKind::DeadlineExceeded,
                DbError::Dsn { .. } | DbError::Scheme { .. } | DbError::Unsupported(_) => {
                    ErrorKind::FailedPrecondition
                }
                e if e.is_unreachable() => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Self::ShuttingDown => ErrorKind::Aborted,
            Self::TooManyRollouts { .. }
            | Self::TooManyInFleet { .. }
            | Self::TooManyForIdentity { .. }
            | Self::LineFull { .. } => ErrorKind::ResourceExhausted,
            Self::UnknownRollout(_) => ErrorKind::NotFound,
            Self::Store(_) | Self::Discovery(_) => ErrorKind::Unavailable,
        }
    }

    /// A rollout that could not be started or changed.
    pub(super) fn runner(e: RunnerError) -> Self {
        match e {
            RunnerError::NotFound(id) => Self::UnknownRollout(id),
            RunnerError::Store(e) => Self::Store(e),
            other => Self::FailedPrecondition(other.to_string()),
        }
    }

    /// A repair failure on `tenant` of `fleet`, naming both.
    pub(super) fn repair(fleet: &str, tenant: &str, e: RepairError) -> Self {
        match e {
            RepairError::Db(source) => Self::Tenant {
                fleet: fleet.to_owned(),
                tenant: tenant.to_owned(),
                source,
            },
            other => {
                Self::FailedPrecondition(format!("fleet {fleet:?}, tenant {tenant:?}: {other}"))
            }
        }
    }
}
