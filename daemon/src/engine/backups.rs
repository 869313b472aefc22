//! Backups: listed, read, taken on request, deleted and restored (docs/backups.md). A
//! backup is always looked up within the fleet the request names, so a caller scoped to
//! other fleets learns nothing of it.

use super::{Caller, Engine, EngineError, Scope, Selector};
use crate::{
    backup::Restored,
    model::{BackupRecord, BackupState},
    store::BackupFilter,
};

/// Backups listed when a request gives no limit.
pub const DEFAULT_BACKUPS: u32 = 100;
/// The most backups one list returns.
pub const MAX_BACKUPS: u32 = 1000;

/// A restore that checked out.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    /// The backup restored.
    pub backup: BackupRecord,
    /// The tenant's newest applied version now (the backup's); `None` when none.
    pub version: Option<crate::model::Version>,
    /// How long the restore tool ran, ms.
    pub duration_ms: u64,
}

impl Engine {
    /// Backups newest first: of `fleet` (every fleet when `None`), of `tenant` when given,
    /// at most `limit` ([`DEFAULT_BACKUPS`] for 0, at most [`MAX_BACKUPS`]).
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet; [`EngineError::Store`].
    pub async fn backups(
        &self,
        fleet: Option<&str>,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BackupRecord>, EngineError> {
        if let Some(fleet) = fleet {
            self.registry.fleet(fleet)?;
        }
        let filter = BackupFilter {
            fleet: fleet.unwrap_or_default().to_owned(),
            tenant: tenant.unwrap_or_default().to_owned(),
            state: None,
            limit: match limit {
                0 => DEFAULT_BACKUPS,
                n => n.min(MAX_BACKUPS),
            },
        };
        Ok(self.runner.store().list_backups(&filter).await?)
    }

    /// Backup `id` of `fleet`.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet; [`EngineError::UnknownBackup`] when the
    /// fleet has no such backup; [`EngineError::Store`].
    pub async fn backup_record(&self, fleet: &str, id: &str) -> Result<BackupRecord, EngineError> {
        self.registry.fleet(fleet)?;
        let unknown = || EngineError::UnknownBackup {
            fleet: fleet.to_owned(),
            id: id.to_owned(),
        };
        let record = self
            .runner
            .store()
            .get_backup(id)
            .await?
            .ok_or_else(unknown)?;
        match record.fleet == fleet {
            true => Ok(record),
            false => Err(unknown()),
        }
    }

    /// Takes an ad-hoc backup of `tenant` of `fleet`, named `name`, under the tenant lock,
    /// and logs it naming `caller`.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant, or a set that does not load;
    /// [`EngineError::Backup`] when the lock does not come, the tool is missing or fails,
    /// or the directory cannot be written (the failure is recorded).
    pub async fn take_backup(
        &self,
        fleet: &str,
        tenant: &str,
        name: &str,
        caller: &Caller,
    ) -> Result<BackupRecord, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(fleet, &one(tenant)).await?;
        let tenant = &tenants[0];
        let record = self
            .runner
            .backups()
            .adhoc(&fleet, tenant, &set, name)
            .await
            .map_err(|source| EngineError::Backup {
                fleet: fleet.name.clone(),
                tenant: tenant.id.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(fleet = %fleet.name, tenant = %tenant.id, backup = %record.id, caller = %caller.who, "backup taken on request");
        Ok(record)
    }

    /// Deletes backup `id` of `fleet` (file and record); false when there was none.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet; [`EngineError::Backup`] when the file
    /// exists and cannot be removed; [`EngineError::Store`].
    pub async fn delete_backup(
        &self,
        fleet: &str,
        id: &str,
        caller: &Caller,
    ) -> Result<bool, EngineError> {
        let record = match self.backup_record(fleet, id).await {
            Ok(record) => record,
            Err(EngineError::UnknownBackup { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let deleted = self
            .runner
            .backups()
            .delete(&record)
            .await
            .map_err(|source| EngineError::Backup {
                fleet: record.fleet.clone(),
                tenant: record.tenant.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(fleet = %record.fleet, tenant = %record.tenant, backup = %record.id, caller = %caller.who, "backup deleted");
        Ok(deleted)
    }

    /// Restores backup `id` into `tenant` of `fleet` under the tenant lock, checks the
    /// restored history's newest version against the backup's, logs the restore in the
    /// tenant's history log and the daemon's log, naming `caller`, and reads the tenant
    /// again for its last-known state.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant; [`EngineError::UnknownBackup`];
    /// [`EngineError::BackupOfAnotherTenant`], [`EngineError::BackupNotTaken`];
    /// [`EngineError::TenantInRollout`] while a rollout that is not over holds the tenant;
    /// [`EngineError::Restore`] when the file changed, the lock does not come, the tool
    /// fails, or the restored history does not say the backup's version.
    pub async fn restore(
        &self,
        fleet: &str,
        tenant: &str,
        id: &str,
        caller: &Caller,
    ) -> Result<RestoreOutcome, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(fleet, &one(tenant)).await?;
        let tenant = &tenants[0];
        let record = self.backup_record(&fleet.name, id).await?;
        if record.tenant != tenant.id {
            return Err(EngineError::BackupOfAnotherTenant {
                fleet: fleet.name.clone(),
                tenant: tenant.id.clone(),
                id: record.id,
                of: record.tenant,
            });
        }
        if record.state != BackupState::Taken {
            return Err(EngineError::BackupNotTaken {
                fleet: fleet.name.clone(),
                tenant: tenant.id.clone(),
                id: record.id,
            });
        }
        let store = self.runner.store();
        if let Some(rollout) = store.rollout_holding(&fleet.name, &tenant.id).await? {
            return Err(EngineError::TenantInRollout {
                fleet: fleet.name.clone(),
                tenant: tenant.id.clone(),
                rollout,
            });
        }
        let by = &self.registry.instance_id;
        let Restored {
            version,
            duration_ms,
        } = self
            .runner
            .backups()
            .restore(&fleet, tenant, &set, &record, by)
            .await
            .map_err(|source| EngineError::Restore {
                fleet: fleet.name.clone(),
                tenant: tenant.id.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(
            fleet = %fleet.name,
            tenant = %tenant.id,
            backup = %record.id,
            version = %version.map(|v| v.to_string()).unwrap_or_default(),
            caller = %caller.who,
            "backup restored"
        );
        // Its last-known state (what `status` answers from) is read again now.
        if let Err(e) = self.history(&fleet.name, &tenant.id).await {
            tracing::warn!(fleet = %fleet.name, tenant = %tenant.id, "reading the restored tenant: {e}");
        }
        Ok(RestoreOutcome {
            backup: record,
            version,
            duration_ms,
        })
    }
}

/// A selector of the one tenant `id`.
fn one(id: &str) -> Selector {
    Selector {
        ids: vec![id.to_owned()],
        ..Default::default()
    }
}
