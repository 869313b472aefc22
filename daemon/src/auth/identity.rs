//! An authenticated caller: its name, its [`Role`] and the fleets it may touch.

use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use tonic::Status;

use crate::model::{Role, Rpc};

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
    /// A sentence naming the pattern that is not a glob.
    pub(crate) fn new(name: &str, role: Role, patterns: &[String]) -> Result<Self, String> {
        let fleets = if patterns.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for p in patterns {
                set.add(Glob::new(p).map_err(|e| format!("fleets: {p:?}: {e}"))?);
            }
            Some(Arc::new(set.build().map_err(|e| format!("fleets: {e}"))?))
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
    /// `PERMISSION_DENIED` naming the identity, its role and the role `rpc` needs.
    pub(crate) fn may(&self, rpc: Rpc) -> Result<(), Status> {
        if self.role >= rpc.role() {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} is {} {}: {} needs {}",
            self.name,
            article(self.role),
            self.role,
            rpc.path(),
            rpc.role()
        )))
    }

    /// Whether it may call `rpc` on `fleet`.
    ///
    /// # Errors
    /// `PERMISSION_DENIED` as [`Identity::may`], or naming the fleet outside its scope.
    pub(crate) fn may_on(&self, rpc: Rpc, fleet: &str) -> Result<(), Status> {
        self.may(rpc)?;
        if self.sees(fleet) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{} may not touch fleet {fleet:?} ({} is outside its fleets)",
            self.name,
            rpc.path()
        )))
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Viewer => "a",
        Role::Operator | Role::Admin => "an",
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
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        assert!(other.message().contains("us-east"), "{}", other.message());
        let repair = deployer.may(Rpc::Repair).unwrap_err();
        assert!(
            repair.message().contains("needs admin"),
            "{}",
            repair.message()
        );
        assert!(Identity::anonymous().may_on(Rpc::Repair, "any").is_ok());
        assert!(Identity::new("x", Role::Viewer, &["[".into()]).is_err());
    }
}
