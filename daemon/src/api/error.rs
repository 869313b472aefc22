//! The one place a failure becomes a `tonic::Status`: [`ApiError`]'s `From`. Each status
//! carries a bounded message and a `google.rpc.ErrorInfo` detail (through `tonic-types`):
//! the failure's stable reason code, the domain [`DOMAIN`], and the fleet, tenant, version
//! and rollout it names where known. The codes are a contract, listed in docs/errors.md.
//! The gate's refusals pass here too ([`Gated`]).

use std::collections::HashMap;

use tonic::{Code, Request, Status, service::Interceptor};
use tonic_types::{ErrorDetails, StatusExt};

use super::invalid::RequestError;
use crate::{
    auth::{AuthError, Gate, Refusal},
    engine::{EngineError, ErrorKind, Reason, Subject},
};

/// `google.rpc.ErrorInfo.domain` of every error the daemon sends.
pub(crate) const DOMAIN: &str = "avocet.dev";

/// The reason of [`ApiError::Request`]: a field of the request that does not convert (a
/// malformed version, selector, duration or enum).
const INVALID_REQUEST: &str = "INVALID_REQUEST";

/// A request that failed: a malformed field, the engine's error, or the gate's refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A malformed or out-of-range field (→ `INVALID_ARGUMENT`, reason `INVALID_REQUEST`).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A required field left empty (→ `INVALID_ARGUMENT`, reason `MISSING_FIELD`, as the
    /// engine's [`EngineError::Missing`]).
    #[error("{0} is required")]
    Missing(&'static str),
    /// What the engine refused (→ the code of its [`ErrorKind`], its [`crate::engine::Reason`]).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Who calls is not proved, or may not do this (→ `UNAUTHENTICATED`,
    /// `PERMISSION_DENIED` or `RESOURCE_EXHAUSTED`).
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let (code, reason, metadata) = match &e {
            ApiError::Request(_) => (Code::InvalidArgument, INVALID_REQUEST, Vec::new()),
            ApiError::Missing(_) => (
                Code::InvalidArgument,
                Reason::MissingField.code(),
                Vec::new(),
            ),
            ApiError::Engine(e) => (code(e.kind()), e.reason().code(), metadata(e.subject())),
            ApiError::Auth(e) => {
                let code = match e.refusal() {
                    Refusal::Unauthenticated => Code::Unauthenticated,
                    Refusal::PermissionDenied => Code::PermissionDenied,
                    Refusal::Exhausted => Code::ResourceExhausted,
                };
                let fleet = e.fleet().map(|f| ("fleet", f.to_owned()));
                (code, e.reason(), fleet.into_iter().collect())
            }
        };
        let metadata: HashMap<String, String> = metadata
            .into_iter()
            .map(|(k, v)| (k.to_owned(), crate::model::bounded(&v).to_owned()))
            .collect();
        Status::with_error_details(
            code,
            bounded(e.to_string()),
            ErrorDetails::with_error_info(reason, DOMAIN, metadata),
        )
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        ApiError::from(e).into()
    }
}

/// The gRPC code of each kind of engine failure.
fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Aborted => Code::Aborted,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::DataLoss => Code::DataLoss,
    }
}

/// `ErrorInfo.metadata` of what a failure names: `fleet`, `tenant`, `version` (as the set
/// writes it: `42`, `1.2.3`, `R__views`) and `rollout`, each only where known.
fn metadata(s: Subject<'_>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    out.extend(s.fleet.map(|f| ("fleet", f.to_owned())));
    out.extend(s.tenant.map(|t| ("tenant", t.to_owned())));
    out.extend(s.version.map(|v| ("version", v.to_string())));
    out.extend(s.rollout.map(|r| ("rollout", r.to_owned())));
    out
}

/// Longest `grpc-message` the daemon sends: a message quoting a request (a 1 MB selector)
/// is cut here, so an answer never exceeds a client's metadata limit (issue 25, finding 17).
/// Each metadata value of the `ErrorInfo` is cut at 128 bytes (`model::bounded`).
pub(super) const MAX_MESSAGE_BYTES: usize = 1024;

/// `message` with each quoted input cut at 128 bytes ([`crate::model::bound_quotes`], issue
/// 25 finding 17), then cut at [`MAX_MESSAGE_BYTES`] on a character boundary, saying so.
fn bounded(message: String) -> String {
    let mut message = match crate::model::bound_quotes(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(cut) => cut,
    };
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let total = message.len();
    message.truncate(end);
    message.push_str(&format!("… (cut: {total} bytes)"));
    message
}

/// The [`Gate`] as tonic's interceptor: a refused call's [`AuthError`] becomes its status
/// here, through [`ApiError`]'s `From` like every other failure.
#[derive(Clone)]
pub(crate) struct Gated(pub(crate) Gate);

impl Interceptor for Gated {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0.admit(request).map_err(Status::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, finding 17: a 1 MB quoted input does not come back whole.
    #[test]
    fn messages_are_bounded() {
        let status = Status::from(ApiError::from(RequestError::Digest("é".repeat(1 << 19))));
        assert!(
            status.message().len() < MAX_MESSAGE_BYTES + 64,
            "{}",
            status.message().len()
        );
        assert!(status.message().ends_with("bytes)"));
        let short = Status::from(ApiError::from(RequestError::ZeroSteps));
        assert_eq!(short.message(), "steps must be at least 1");
    }

    /// Every status carries its reason and what it names as `google.rpc.ErrorInfo`.
    #[test]
    fn statuses_carry_error_info() {
        let e = EngineError::UnknownRollout("r-1".into());
        let status = Status::from(ApiError::from(e));
        assert_eq!(status.code(), Code::NotFound);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "ROLLOUT_NOT_FOUND");
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(
            info.metadata.get("rollout").map(String::as_str),
            Some("r-1")
        );
        let status = Status::from(ApiError::from(RequestError::ZeroSteps));
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, INVALID_REQUEST);
    }
}
