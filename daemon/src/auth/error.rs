//! Why a call was refused before it reached the engine: no proof of who calls, or an
//! identity whose role or fleets do not allow the call. The API turns each into its status
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`) and reason.

use crate::config::{Role, SubjectError};

/// A refused call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// An `authorization` value that is not `Bearer <token>`.
    #[error("authorization must be `Bearer <token>`")]
    Malformed,
    /// A token whose hash matches no configured token.
    #[error("the token is not one this daemon knows")]
    UnknownToken,
    /// A client certificate that does not parse, or whose subject holds a value that is
    /// not a string.
    #[error(transparent)]
    BadCertificate(#[from] SubjectError),
    /// A client certificate whose subject is no configured client's.
    #[error("the client certificate's subject maps to no identity in [auth] clients")]
    UnknownSubject,
    /// With `[auth]` set, a call that brings neither a token nor a certificate.
    #[error(
        "avocetd requires authentication: pass a token (--token or AVOCET_TOKEN) or a client \
         certificate"
    )]
    NoCredentials,
    /// A peer locked out after too many refusals (`failures.rs`).
    #[error("too many failed authentications from this address: try again in a minute")]
    LockedOut,
    /// A call that did not pass the gate (the service runs without it).
    #[error("no identity: the call did not pass the gate")]
    NoIdentity,
    /// The identity's role is below the one the method needs.
    #[error("{name} is {} {role}: {method} needs {needed}", article(*role))]
    RoleTooLow {
        /// The identity's name.
        name: String,
        /// Its role.
        role: Role,
        /// The method's path.
        method: &'static str,
        /// The role the method needs.
        needed: Role,
    },
    /// The fleet is outside the identity's fleets.
    #[error("{name} may not touch fleet {fleet:?} ({method} is outside its fleets)")]
    FleetOutOfScope {
        /// The identity's name.
        name: String,
        /// The fleet asked for.
        fleet: String,
        /// The method's path.
        method: &'static str,
    },
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Viewer => "a",
        Role::Operator | Role::Admin => "an",
    }
}

/// How the API answers an [`AuthError`]: its gRPC code's kind and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `UNAUTHENTICATED`.
    Unauthenticated,
    /// `PERMISSION_DENIED`.
    PermissionDenied,
    /// `RESOURCE_EXHAUSTED`.
    Exhausted,
}

impl AuthError {
    /// Its kind of refusal.
    pub(crate) fn refusal(&self) -> Refusal {
        match self {
            Self::RoleTooLow { .. } | Self::FleetOutOfScope { .. } => Refusal::PermissionDenied,
            Self::LockedOut => Refusal::Exhausted,
            _ => Refusal::Unauthenticated,
        }
    }

    /// The stable reason code (`google.rpc.ErrorInfo.reason`; docs/errors.md).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "MALFORMED_AUTHORIZATION",
            Self::UnknownToken => "UNKNOWN_TOKEN",
            Self::BadCertificate(_) => "BAD_CERTIFICATE",
            Self::UnknownSubject => "UNKNOWN_CERTIFICATE_SUBJECT",
            Self::NoCredentials => "NO_CREDENTIALS",
            Self::LockedOut => "TOO_MANY_FAILED_AUTHENTICATIONS",
            Self::NoIdentity => "NO_IDENTITY",
            Self::RoleTooLow { .. } => "ROLE_TOO_LOW",
            Self::FleetOutOfScope { .. } => "FLEET_OUT_OF_SCOPE",
        }
    }

    /// The fleet it names, for [`AuthError::FleetOutOfScope`].
    pub(crate) fn fleet(&self) -> Option<&str> {
        match self {
            Self::FleetOutOfScope { fleet, .. } => Some(fleet),
            _ => None,
        }
    }
}
