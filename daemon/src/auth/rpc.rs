//! Every call that needs a role: the [`Rpc`]s and the least [`Role`] each allows.

use crate::config::Role;

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
    ListBackups,
    GetBackup,
    DeleteBackup,
    Restore,
    Backup,
    Census,
    PublishSet,
    TagSet,
    ListSets,
    GetSet,
    DeleteSet,
    DiffSets,
}

impl Rpc {
    /// Every RPC, in the order of `avocet.proto`.
    pub const ALL: [Rpc; 32] = [
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
        Self::ListBackups,
        Self::GetBackup,
        Self::DeleteBackup,
        Self::Restore,
        Self::Backup,
        Self::Census,
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
            Self::ListBackups => "avocet.v1.Backups/List",
            Self::GetBackup => "avocet.v1.Backups/Get",
            Self::DeleteBackup => "avocet.v1.Backups/Delete",
            Self::Restore => "avocet.v1.Backups/Restore",
            Self::Backup => "avocet.v1.Backups/Backup",
            Self::Census => "avocet.v1.Fleet/Census",
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
            | Self::ListBackups
            | Self::GetBackup
            | Self::Census
            | Self::ListSets
            | Self::GetSet
            | Self::DiffSets => Role::Viewer,
            Self::Apply
            | Self::Rollback
            | Self::Cancel
            | Self::Pause
            | Self::Resume
            | Self::DeleteBackup
            | Self::Backup
            | Self::PublishSet
            | Self::TagSet
            | Self::DeleteSet => Role::Operator,
            Self::Restore
            | Self::Repair
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
    fn every_rpc_has_its_own_path() {
        let paths: std::collections::HashSet<_> = Rpc::ALL.iter().map(|r| r.path()).collect();
        assert_eq!(paths.len(), Rpc::ALL.len());
    }
}
