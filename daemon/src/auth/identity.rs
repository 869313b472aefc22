//! An authenticated caller: its name, its [`Role`] and the fleets it may touch.

use std::sync::Arc;

use super::AuthError;
use super::Rpc;
use crate::config::Role;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// A configured fleet pattern that is not a glob.
#[derive(Debug, thiserror::Error)]
#[error("fleets: {}{source}", pattern.as_ref().map(|p| format!("{p:?}: ")).unwrap_or_default())]
pub(crate) struct FleetPatternError {
    /// The pattern, when one is at fault (else the set as a whole).
    pattern: Option<String>,
    /// Why.
    source: globset::Error,
}

/// Who a call comes from, as the [`super::Gate`] proved it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The token's or client's configured name; `anonymous` when no `[auth]` is set.
    name: Arc<str>,
    role: Role,
    /// Fleets it may touch; `None`: every fleet.
    fleets: Option<Arc<GlobSet>>,
}

impl Identity {
    /// Everyone, when the daemon has no `[auth]`: `admin` on every fleet.
    pub(crate) fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
            fleets: None,
        }
    }

    /// `name` with `role` on the fleets matching `patterns` (glob syntax: `*`, `?`, `[…]`,
    /// `{a,b}`); an empty list means every fleet.
    ///
    /// # Errors
    /// [`FleetPatternError`] naming the pattern that is not a glob.
    pub(crate) fn new(
        name: &str,
        role: Role,
        patterns: &[String],
    ) -> Result<Self, FleetPatternError> {
        let fleets = if patterns.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for p in patterns {
                set.add(Glob::new(p).map_err(|source| FleetPatternError {
                    pattern: Some(p.clone()),
                    source,
                })?);
            }
            let set = set.build().map_err(|source| FleetPatternError {
                pattern: None,
                source,
            })?;
            Some(Arc::new(set))
        };
        Ok(Self {
            name: name.into(),
            role,
            fleets,
        })
    }

    /// The configured name, for audit entries and logs.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// True when it may touch every fleet.
    pub(crate) fn sees_all(&self) -> bool {
        self.fleets.is_none()
    }

    /// True when it may touch `fleet`.
    pub(crate) fn sees(&self, fleet: &str) -> bool {
        self.fleets.as_ref().is_none_or(|f| f.is_match(fleet))
    }

    /// Whether its role allows `rpc` at all (before the request names a fleet).
    ///
    /// # Errors
    /// [`AuthError::RoleTooLow`] naming the identity, its role and the role `rpc` needs.
    pub(crate) fn may(&self, rpc: Rpc) -> Result<(), AuthError> {
        if self.role >= rpc.role() {
            return Ok(());
        }
        Err(AuthError::RoleTooLow {
            name: self.name.to_string(),
            role: self.role,
            method: rpc.path(),
            needed: rpc.role(),
        })
    }

    /// Whether it may call `rpc` on `fleet`.
    ///
    /// # Errors
    /// As [`Identity::may`], or [`AuthError::FleetOutOfScope`] naming the fleet outside its
    /// scope.
    pub(crate) fn may_on(&self, rpc: Rpc, fleet: &str) -> Result<(), AuthError> {
        self.may(rpc)?;
        if self.sees(fleet) {
            return Ok(());
        }
        Err(AuthError::FleetOutOfScope {
            name: self.name.to_string(),
            fleet: fleet.to_owned(),
            method: rpc.path(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_below_and_fleets_are_globs() {
        let deployer = Identity::new("deployer", Role::Operator, &["eu-*".into()]).unwrap();
        assert!(deployer.may_on(Rpc::Apply, "eu-west").is_ok());
        assert!(deployer.may_on(Rpc::Status, "eu-west").is_ok());
        let other = deployer.may_on(Rpc::Apply, "us-east").unwrap_err();
        assert_eq!(other.refusal(), super::super::Refusal::PermissionDenied);
        assert!(other.to_string().contains("us-east"), "{other}");
        let repair = deployer.may(Rpc::Repair).unwrap_err();
        assert!(repair.to_string().contains("needs admin"), "{repair}");
        assert!(Identity::anonymous().may_on(Rpc::Repair, "any").is_ok());
        assert!(Identity::new("x", Role::Viewer, &["[".into()]).is_err());
    }
}
