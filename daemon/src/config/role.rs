//! The three [`Role`]s a caller may hold (`[auth]`'s tokens and certificate subjects name
//! one each); which calls each allows is `auth`'s [`crate::auth::Rpc`].

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What an identity may do, each role including the ones below it.
///
/// | role | allows |
/// | --- | --- |
/// | `viewer` | reads: Plan, Verify, Status, History, ListFleets, ListTenants, GetTenant, Census, rollouts Get, List and Watch, backups List and Get, ListSets, GetSet, DiffSets |
/// | `operator` | and changes that run migrations: Apply, Rollback, rollouts Cancel, Pause, Resume, backups Backup and Delete, and published sets: PublishSet, TagSet, DeleteSet |
/// | `admin` | and changes to what is known: RegisterTenant, DeregisterTenant, RefreshTenants, Repair, Baseline, backups Restore |
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

/// A text that names no [`Role`] (it is quoted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role (viewer, operator or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// `viewer`, `operator` or `admin`.
    ///
    /// # Errors
    /// [`UnknownRole`] for any other text.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(UnknownRole(other.to_owned())),
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
        let unknown = "root".parse::<Role>().unwrap_err();
        assert!(unknown.to_string().contains("\"root\""), "{unknown}");
    }
}
