//! Who may call what: the three [`Role`]s and the [`Rpc`]s each allows.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What an identity may do, each role including the ones below it.
///
/// | role | allows |
/// | --- | --- |
/// | `viewer` | reads: Plan, Verify, Status, History, ListFleets, ListTenants, GetTenant, rollouts Get, List and Watch, ListSets, GetSet, DiffSets |
/// | `operator` | and changes that run migrations: Apply, Rollback, rollouts Cancel, Pause, Resume, and published sets: PublishSet, TagSet, DeleteSet |
/// | `admin` | and changes to what is known: RegisterTenant, DeregisterTenant, RefreshTenants, Repair, Baseline |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Reads, and runs and steers rollouts.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "{other:?} is not a role (viewer, operator or admin)"
            )),
        }
    }
}

/// Every RPC of `avocet.v1` that needs a role. `grpc.health.v1` and reflection need none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is the RPC of its name; `path` gives its full name.
pub enum Rpc {
    Plan,
    Apply,
    Rollback,
    Verify,
    Status,
    Repair,
    Baseline,
    History,
    GetRollout,
    ListRollouts,
    Watch,
    Cancel,
    Pause,
    Resume,
    ListFleets,
    ListTenants,
    GetTenant,
    RegisterTenant,
    DeregisterTenant,
    RefreshTenants,
    PublishSet,
    TagSet,
    ListSets,
    GetSet,
    DeleteSet,
    DiffSets,
}

impl Rpc {
    /// Every RPC, in the order of `avocet.proto`.
    pub const ALL: [Rpc; 26] = [
        Self::Plan,
        Self::Apply,
        Self::Rollback,
        Self::Verify,
        Self::Status,
        Self::Repair,
        Self::Baseline,
        Self::History,
        Self::GetRollout,
        Self::ListRollouts,
        Self::Watch,
        Self::Cancel,
        Self::Pause,
        Self::Resume,
        Self::ListFleets,
        Self::ListTenants,
        Self::GetTenant,
        Self::RegisterTenant,
        Self::DeregisterTenant,
        Self::RefreshTenants,
        Self::PublishSet,
        Self::TagSet,
        Self::ListSets,
        Self::GetSet,
        Self::DeleteSet,
        Self::DiffSets,
    ];

    /// The gRPC method's full name, e.g. `avocet.v1.Migrator/Apply`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Plan => "avocet.v1.Migrator/Plan",
            Self::Apply => "avocet.v1.Migrator/Apply",
            Self::Rollback => "avocet.v1.Migrator/Rollback",
            Self::Verify => "avocet.v1.Migrator/Verify",
            Self::Status => "avocet.v1.Migrator/Status",
            Self::Repair => "avocet.v1.Migrator/Repair",
            Self::Baseline => "avocet.v1.Migrator/Baseline",
            Self::History => "avocet.v1.Migrator/History",
            Self::GetRollout => "avocet.v1.Rollouts/Get",
            Self::ListRollouts => "avocet.v1.Rollouts/List",
            Self::Watch => "avocet.v1.Rollouts/Watch",
            Self::Cancel => "avocet.v1.Rollouts/Cancel",
            Self::Pause => "avocet.v1.Rollouts/Pause",
            Self::Resume => "avocet.v1.Rollouts/Resume",
            Self::ListFleets => "avocet.v1.Fleet/ListFleets",
            Self::ListTenants => "avocet.v1.Fleet/ListTenants",
            Self::GetTenant => "avocet.v1.Fleet/GetTenant",
            Self::RegisterTenant => "avocet.v1.Fleet/RegisterTenant",
            Self::DeregisterTenant => "avocet.v1.Fleet/DeregisterTenant",
            Self::RefreshTenants => "avocet.v1.Fleet/RefreshTenants",
            Self::PublishSet => "avocet.v1.Sets/PublishSet",
            Self::TagSet => "avocet.v1.Sets/TagSet",
            Self::ListSets => "avocet.v1.Sets/ListSets",
            Self::GetSet => "avocet.v1.Sets/GetSet",
            Self::DeleteSet => "avocet.v1.Sets/DeleteSet",
            Self::DiffSets => "avocet.v1.Sets/DiffSets",
        }
    }

    /// The least role that may call it (the table of [`Role`]).
    pub fn role(self) -> Role {
        match self {
            Self::Plan
            | Self::History
            | Self::Verify
            | Self::Status
            | Self::GetRollout
            | Self::ListRollouts
            | Self::Watch
            | Self::ListFleets
            | Self::ListTenants
            | Self::GetTenant
            | Self::ListSets
            | Self::GetSet
            | Self::DiffSets => Role::Viewer,
            Self::Apply
            | Self::Rollback
            | Self::Cancel
            | Self::Pause
            | Self::Resume
            | Self::PublishSet
            | Self::TagSet
            | Self::DeleteSet => Role::Operator,
            Self::Repair
            | Self::Baseline
            | Self::RegisterTenant
            | Self::DeregisterTenant
            | Self::RefreshTenants => Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse_from_their_names() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().unwrap_err().contains("root"));
        let paths: std::collections::HashSet<_> = Rpc::ALL.iter().map(|r| r.path()).collect();
        assert_eq!(paths.len(), Rpc::ALL.len());
    }
}
