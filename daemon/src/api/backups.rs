//! `avocet.v1.Backups`: list, get, take, delete and restore backups. Every request but a
//! list names its fleet, which is checked against the caller's scope before anything is
//! looked up; a list without a fleet shows only the fleets the caller may see.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, backups_server::Backups};
use tonic::{Request, Response, Status};

use super::{
    ApiError, admit,
    invalid::RequestError,
    receive,
    send::{self, Wire},
};
use crate::{
    auth::Rpc,
    engine::{Engine, RestoreOutcome},
    model::BackupRecord,
};

/// The Backups service.
pub(crate) struct BackupsService(pub(super) Arc<Engine>);

/// A backup id: a UUID as the daemon makes them.
fn backup_id(id: String) -> Result<String, ApiError> {
    if id.is_empty() {
        return Err(ApiError::Missing("id"));
    }
    match uuid::Uuid::try_parse(&id) {
        Ok(_) => Ok(id),
        Err(_) => Err(RequestError::BackupId(crate::model::bound_quotes(&id).into_owned()).into()),
    }
}

#[tonic::async_trait]
impl Backups for BackupsService {
    async fn list(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let (who, _) = admit(&request, Rpc::ListBackups)?;
        let req = request.into_inner();
        let fleet = match req.fleet.is_empty() {
            true => None,
            false => Some(receive::fleet_ref(req.fleet)?),
        };
        let tenant = match req.tenant.is_empty() {
            true => None,
            false => Some(receive::tenant_id(req.tenant)?),
        };
        if let Some(fleet) = &fleet {
            who.may_on(Rpc::ListBackups, fleet)?;
        }
        let listed = self
            .0
            .backups(fleet.as_deref(), tenant.as_deref(), req.limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListBackupsResponse {
            backups: listed
                .iter()
                .filter(|b| who.sees(&b.fleet))
                .map(backup)
                .collect(),
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let (who, _) = admit(&request, Rpc::GetBackup)?;
        let req = request.into_inner();
        let fleet = receive::fleet_ref(req.fleet)?;
        who.may_on(Rpc::GetBackup, &fleet)?;
        let id = backup_id(req.id)?;
        let record = self
            .0
            .backup_record(&fleet, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(backup(&record)))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::DeleteBackupResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::DeleteBackup)?;
        let req = request.into_inner();
        let fleet = receive::fleet_ref(req.fleet)?;
        who.may_on(Rpc::DeleteBackup, &fleet)?;
        let id = backup_id(req.id)?;
        let deleted = self
            .0
            .delete_backup(&fleet, &id, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeleteBackupResponse { deleted }))
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::Restore)?;
        let req = request.into_inner();
        let (fleet, tenant) = receive::tenant_ref(req.fleet, req.tenant)?;
        who.may_on(Rpc::Restore, &fleet)?;
        let id = backup_id(req.backup_id)?;
        let RestoreOutcome {
            backup: record,
            version,
            duration_ms,
        } = self
            .0
            .restore(&fleet, &tenant, &id, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RestoreResponse {
            backup: Some(backup(&record)),
            version: send::opt(&version),
            duration_ms,
        }))
    }

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let (who, caller) = admit(&request, Rpc::Backup)?;
        let req = request.into_inner();
        let (fleet, tenant) = receive::tenant_ref(req.fleet, req.tenant)?;
        who.may_on(Rpc::Backup, &fleet)?;
        if req.name.len() > 128 || req.name.chars().any(char::is_control) {
            return Err(ApiError::from(RequestError::BackupName).into());
        }
        let record = self
            .0
            .take_backup(&fleet, &tenant, &req.name, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(backup(&record)))
    }
}

/// A backup on the wire.
fn backup(b: &BackupRecord) -> pb::Backup {
    let (before_version, before_direction) = match &b.before {
        Some((v, d)) => (Some(v.wire()), d.as_str().to_owned()),
        None => (None, String::new()),
    };
    pb::Backup {
        id: b.id.clone(),
        fleet: b.fleet.clone(),
        tenant: b.tenant.clone(),
        name: b.name.clone(),
        rollout_id: b.rollout_id.clone(),
        before_version,
        before_direction,
        version: send::opt(&b.version),
        path: b.path.clone(),
        bytes: b.bytes,
        sha256: b.sha256.clone(),
        started_at_unix_ms: b.started_at_ms,
        finished_at_unix_ms: b.finished_at_ms,
        duration_ms: b.duration_ms(),
        tool: b.tool.clone(),
        tool_version: b.tool_version.clone(),
        state: b.state.as_str().to_owned(),
        error: b.error.clone().unwrap_or_default(),
    }
}
