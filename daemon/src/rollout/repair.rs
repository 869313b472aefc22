//! Repair: an operator checked a tenant's schema after a `failed` or `running` record and
//! says what state it is in. The record is rewritten under the tenant lock, on the same
//! session and history path as every step.

use super::{step::record_repair, tenant::under_lock};
use crate::{
    dialect::DbError,
    fleet::{Fleet, PooledSession, Registry, Tenant},
    model::{MigrationSet, RecordStatus},
};

/// Why a repair did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RepairError {
    /// The lock did not come, the tenant is unreachable, or its history table failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The version has no `failed` or `running` record on the tenant.
    #[error("version {version} has no failed or running record")]
    NothingToRepair {
        /// The version asked for.
        version: i64,
    },
    /// The version is not in the fleet's migration set.
    #[error("version {version} is not in the migration set")]
    NotInSet {
        /// The version asked for.
        version: i64,
    },
}

/// Marks the `failed` or `running` record of `version` on `tenant` as `status` (`Applied`
/// or `RolledBack`) and returns the status it had.
///
/// # Errors
/// [`RepairError::Db`] when the lock does not come within the fleet's `lock_timeout` or
/// the tenant cannot be read or written; [`RepairError::NothingToRepair`] and
/// [`RepairError::NotInSet`] when there is nothing to repair.
pub(crate) async fn repair(
    registry: &Registry,
    fleet: &Fleet,
    tenant: &Tenant,
    set: &MigrationSet,
    version: i64,
    status: RecordStatus,
) -> Result<RecordStatus, RepairError> {
    under_lock(fleet, tenant, async |locked: &mut PooledSession, _| {
        let session = locked.session();
        let history = session.read_history().await?.unwrap_or_default();
        let record = history
            .iter()
            .find(|r| r.version == version && r.status.needs_attention())
            .ok_or(RepairError::NothingToRepair { version })?;
        let migration = set.get(version).ok_or(RepairError::NotInSet { version })?;
        record_repair(session, record, migration, status, &registry.instance_id).await?;
        Ok(record.status)
    })
    .await?
}
