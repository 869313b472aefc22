//! `avocet.v1.Backups` on [`Client`]: list, get, take, delete and restore backups.

use crate::{Client, ClientError, pb};

impl Client {
    /// `Backups.List`: backups newest first, of `fleet` (every fleet the caller may see
    /// when empty) and of `tenant` when not empty, at most `limit` (100 for 0).
    ///
    /// # Errors
    /// [`ClientError::Status`]: `NOT_FOUND` for an unknown fleet; `PERMISSION_DENIED` for a
    /// fleet outside the caller's scope.
    pub async fn list_backups(
        &mut self,
        fleet: &str,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<pb::Backup>, ClientError> {
        let req = pb::ListBackupsRequest {
            fleet: fleet.into(),
            tenant: tenant.into(),
            limit,
        };
        Ok(self.backups.list(req).await?.into_inner().backups)
    }

    /// `Backups.Get`: backup `id` of `fleet`.
    ///
    /// # Errors
    /// `NOT_FOUND` (`BACKUP_NOT_FOUND`) when the fleet has no such backup.
    pub async fn get_backup(&mut self, fleet: &str, id: &str) -> Result<pb::Backup, ClientError> {
        let req = pb::GetBackupRequest {
            fleet: fleet.into(),
            id: id.into(),
        };
        Ok(self.backups.get(req).await?.into_inner())
    }

    /// `Backups.Backup`: an ad-hoc backup of `tenant` named `name` (may be empty), taken
    /// under the tenant lock.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` (`BACKUP_TOOL_MISSING`) when the tool is not installed;
    /// `INTERNAL` (`BACKUP_FAILED`) when it fails; `DEADLINE_EXCEEDED` when the lock does
    /// not come.
    pub async fn take_backup(
        &mut self,
        fleet: &str,
        tenant: &str,
        name: &str,
    ) -> Result<pb::Backup, ClientError> {
        let req = pb::BackupRequest {
            fleet: fleet.into(),
            tenant: tenant.into(),
            name: name.into(),
        };
        Ok(self.backups.backup(req).await?.into_inner())
    }

    /// `Backups.Delete`: backup `id`'s file and record; false when there was none.
    ///
    /// # Errors
    /// `INTERNAL` when the file cannot be removed.
    pub async fn delete_backup(&mut self, fleet: &str, id: &str) -> Result<bool, ClientError> {
        let req = pb::DeleteBackupRequest {
            fleet: fleet.into(),
            id: id.into(),
        };
        Ok(self.backups.delete(req).await?.into_inner().deleted)
    }

    /// `Backups.Restore`: backup `id` restored into `tenant` under its lock, checked and
    /// logged.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` (`TENANT_IN_ROLLOUT`, `BACKUP_MISMATCH`, `BACKUP_FILE_CHANGED`)
    /// before anything runs; `INTERNAL` (`BACKUP_FAILED`, `RESTORE_UNVERIFIED`) when the
    /// tool fails or the restored history does not say the backup's version.
    pub async fn restore(
        &mut self,
        fleet: &str,
        tenant: &str,
        id: &str,
    ) -> Result<pb::RestoreResponse, ClientError> {
        let req = pb::RestoreRequest {
            fleet: fleet.into(),
            tenant: tenant.into(),
            backup_id: id.into(),
        };
        Ok(self.backups.restore(req).await?.into_inner())
    }
}
