//! gRPC services of `avocet.v1`: request validation, mapping to the engine, and the one
//! conversion of every layer's errors into `tonic::Status`.

mod convert;
mod fleet;
mod migrator;
mod reads;

use std::sync::Arc;

use tonic::{Code, Status};

pub use fleet::FleetService;
pub use migrator::MigratorService;

use crate::{dialect::DbError, fleet::FleetError, rollout::Engine};

/// State the services share.
#[derive(Clone)]
pub struct Api {
    engine: Arc<Engine>,
}

impl Api {
    /// Services over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

/// A request-level failure. Per-tenant failures of a rollout are events, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A malformed or out-of-range field (→ `INVALID_ARGUMENT`).
    #[error("{0}")]
    InvalidArgument(String),
    /// Fleet or tenant lookups and migration sets (→ `NOT_FOUND`, `INVALID_ARGUMENT`,
    /// `FAILED_PRECONDITION`).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A database operation on one tenant (→ `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
    /// `FAILED_PRECONDITION` or `INTERNAL`).
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Tenant {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// The database error (never contains the DSN).
        source: DbError,
    },
    /// The system is not in a state the request needs (→ `FAILED_PRECONDITION`).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The daemon is shutting down (→ `ABORTED`).
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::Fleet(FleetError::UnknownFleet(_)) => Code::NotFound,
            ApiError::Fleet(FleetError::UnknownTenant { .. }) => Code::NotFound,
            ApiError::Fleet(_) => Code::FailedPrecondition,
            ApiError::Tenant { source, .. } => match source {
                DbError::Connect(_) => Code::Unavailable,
                DbError::LockTimeout { .. } => Code::DeadlineExceeded,
                DbError::Target(_) => Code::FailedPrecondition,
                _ => Code::Internal,
            },
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::ShuttingDown => Code::Aborted,
        };
        Status::new(code, e.to_string())
    }
}
