//! Why a call failed, with the daemon's refusals decoded: the reason code and the fleet,
//! tenant, version and rollout the daemon names in its `google.rpc.ErrorInfo` detail
//! (docs/errors.md lists the codes).

use std::collections::HashMap;

use tonic_types::StatusExt;

/// `google.rpc.ErrorInfo.domain` of the daemon's errors; details of another domain are not
/// read as the daemon's.
pub const ERROR_DOMAIN: &str = "avocet.dev";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address is not a valid URI.
    #[error("invalid daemon address {addr:?}: {message}")]
    Address {
        /// The address given.
        addr: String,
        /// Why it does not parse.
        message: String,
    },
    /// No connection to the daemon.
    #[error("cannot reach avocetd at {addr} (is it running?)")]
    Connect {
        /// The address tried.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// A token that cannot be sent, or a certificate or key file that cannot be read.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A file or directory of a set to publish could not be read.
    #[error("cannot read {}: {source}", path.display())]
    SetFile {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The daemon answered with an error status; its message names fleet, tenant, version,
    /// and its [`Rejection`] carries them as fields with the reason code.
    #[error("{0}")]
    Status(Box<Rejection>),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(Box::new(Rejection::from(status)))
    }
}

impl ClientError {
    /// The gRPC status code, for [`ClientError::Status`].
    pub fn code(&self) -> Option<tonic::Code> {
        self.rejection().map(Rejection::code)
    }

    /// The daemon's refusal, for [`ClientError::Status`].
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Status(r) => Some(r),
            _ => None,
        }
    }
}

/// A status from the daemon, decoded: its code and message, and from its
/// `google.rpc.ErrorInfo` the reason code (`LOCK_TIMEOUT`, `TENANT_NOT_FOUND`, …) and what
/// it names. Shown as `message (Code, REASON)`.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: tonic::Status,
    /// `ErrorInfo.reason`, when the daemon sent one.
    reason: Option<String>,
    /// `ErrorInfo.metadata`: `fleet`, `tenant`, `version`, `rollout` where known.
    metadata: HashMap<String, String>,
}

impl From<tonic::Status> for Rejection {
    fn from(status: tonic::Status) -> Self {
        let info = status
            .get_details_error_info()
            .filter(|i| i.domain == ERROR_DOMAIN);
        let (reason, metadata) = match info {
            Some(i) => (Some(i.reason).filter(|r| !r.is_empty()), i.metadata),
            None => (None, HashMap::new()),
        };
        Self {
            status,
            reason,
            metadata,
        }
    }
}

impl Rejection {
    /// The gRPC status code.
    pub fn code(&self) -> tonic::Code {
        self.status.code()
    }

    /// The daemon's message (bounded to about 1 KiB by the daemon).
    pub fn message(&self) -> &str {
        self.status.message()
    }

    /// The stable reason code (docs/errors.md); `None` for a status the daemon's error
    /// mapping did not make (a transport failure, a deadline, an older daemon).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The fleet the error names, where known.
    pub fn fleet(&self) -> Option<&str> {
        self.field("fleet")
    }

    /// The tenant the error names, where known.
    pub fn tenant(&self) -> Option<&str> {
        self.field("tenant")
    }

    /// The migration version the error names (as the set writes it), where known.
    pub fn version(&self) -> Option<&str> {
        self.field("version")
    }

    /// The rollout id the error names, where known.
    pub fn rollout(&self) -> Option<&str> {
        self.field("rollout")
    }

    /// The status as received.
    pub fn status(&self) -> &tonic::Status {
        &self.status
    }

    /// The gRPC code's canonical name (`NOT_FOUND`, `FAILED_PRECONDITION`, …), as
    /// `grpc/status` spells it.
    pub fn code_name(&self) -> &'static str {
        code_name(self.code())
    }

    fn field(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?}", self.message(), self.code())?;
        if let Some(reason) = &self.reason {
            write!(f, ", {reason}")?;
        }
        f.write_str(")")
    }
}

/// The canonical name of `code` (`grpc/status` `code.proto`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn error_info_is_decoded_and_shown() {
        let metadata = HashMap::from([
            ("tenant".to_owned(), "t01".to_owned()),
            ("version".to_owned(), "7".to_owned()),
        ]);
        let status = tonic::Status::with_error_details(
            tonic::Code::DeadlineExceeded,
            "lock not acquired",
            ErrorDetails::with_error_info("LOCK_TIMEOUT", ERROR_DOMAIN, metadata),
        );
        let e = ClientError::from(status);
        let r = e.rejection().expect("rejection");
        assert_eq!(r.reason(), Some("LOCK_TIMEOUT"));
        assert_eq!((r.tenant(), r.version()), (Some("t01"), Some("7")));
        assert_eq!(r.code_name(), "DEADLINE_EXCEEDED");
        assert_eq!(
            e.to_string(),
            "lock not acquired (DeadlineExceeded, LOCK_TIMEOUT)"
        );
        let plain = ClientError::from(tonic::Status::unavailable("gone"));
        assert_eq!(plain.rejection().and_then(Rejection::reason), None);
        assert_eq!(plain.to_string(), "gone (Unavailable)");
    }
}
