//! gRPC services of `avocet.v1`. Each handler converts its request on receipt
//! (`receive.rs`), calls one [`Engine`] method, and converts the answer once on the way out
//! (`send.rs`). Every failure becomes a `tonic::Status` in one place, [`ApiError`]'s `From`.

mod fleet;
mod migrator;
mod receive;
mod send;

use std::sync::Arc;

use tonic::{Code, Status};

pub(crate) use fleet::FleetService;
pub(crate) use migrator::MigratorService;

use crate::engine::{Engine, EngineError, ErrorKind};

/// A request that failed: a malformed field, or the engine's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A malformed or out-of-range field (→ `INVALID_ARGUMENT`).
    #[error("{0}")]
    InvalidArgument(String),
    /// What the engine refused (→ the code of its [`ErrorKind`]).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::Engine(e) => match e.kind() {
                ErrorKind::InvalidArgument => Code::InvalidArgument,
                ErrorKind::NotFound => Code::NotFound,
                ErrorKind::FailedPrecondition => Code::FailedPrecondition,
                ErrorKind::Unavailable => Code::Unavailable,
                ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
                ErrorKind::Aborted => Code::Aborted,
                ErrorKind::Internal => Code::Internal,
            },
        };
        Status::new(code, e.to_string())
    }
}

/// The services over one engine.
pub(crate) fn services(engine: Arc<Engine>) -> (MigratorService, FleetService) {
    (MigratorService(engine.clone()), FleetService(engine))
}
