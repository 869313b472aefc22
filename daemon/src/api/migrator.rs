//! `avocet.v1.Migrator`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, migrator_server::Migrator};
use tonic::{Request, Response, Status};

use super::{ApiError, EventStream, admit, events_of, receive as wire};
use crate::auth::Rpc;
use crate::engine::{
    ApplyRequest, Engine, PlanRequest, ReadRequest, RepairRequest, RollbackRequest, StatusRequest,
};

/// The Migrator service.
pub(crate) struct MigratorService(pub(super) Arc<Engine>);

/// Converts a wire request on receipt.
fn receive<W, D: TryFrom<W, Error = ApiError>>(request: Request<W>) -> Result<D, ApiError> {
    D::try_from(request.into_inner())
}

#[tonic::async_trait]
impl Migrator for MigratorService {
    type ApplyStream = EventStream;
    type RollbackStream = EventStream;

    async fn plan(
        &self,
        request: Request<pb::PlanRequest>,
    ) -> Result<Response<pb::PlanResponse>, Status> {
        let (who, _) = admit(&request, Rpc::Plan)?;
        let req: PlanRequest = receive(request)?;
        who.may_on(Rpc::Plan, &req.fleet)?;
        let plan = self.0.plan(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&plan).into()))
    }

    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<Self::ApplyStream>, Status> {
        let (who, caller) = admit(&request, Rpc::Apply)?;
        let req: ApplyRequest = receive(request)?;
        who.may_on(Rpc::Apply, &req.plan.fleet)?;
        let id = self.0.apply(req, caller).await.map_err(ApiError::from)?;
        Ok(events_of(&self.0, &id, 0).await?)
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<Self::RollbackStream>, Status> {
        let (who, caller) = admit(&request, Rpc::Rollback)?;
        let req: RollbackRequest = receive(request)?;
        who.may_on(Rpc::Rollback, &req.fleet)?;
        let id = self.0.rollback(req, caller).await.map_err(ApiError::from)?;
        Ok(events_of(&self.0, &id, 0).await?)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let (who, _) = admit(&request, Rpc::Verify)?;
        let req: ReadRequest = receive(request)?;
        who.may_on(Rpc::Verify, &req.fleet)?;
        let verification = self.0.verify(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&verification).into()))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (who, _) = admit(&request, Rpc::Status)?;
        let req: StatusRequest = receive(request)?;
        who.may_on(Rpc::Status, &req.read.fleet)?;
        let status = self.0.status(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&status).into()))
    }

    async fn baseline(
        &self,
        request: Request<pb::BaselineRequest>,
    ) -> Result<Response<pb::BaselineResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::Baseline)?;
        let req = wire::baseline(request.into_inner())?;
        who.may_on(Rpc::Baseline, &req.fleet)?;
        let outcomes = self
            .0
            .baseline(req, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::BaselineResponse {
            tenants: outcomes
                .into_iter()
                .map(|o| pb::BaselineResult {
                    tenant: o.tenant,
                    baselined: o.baselined,
                    error: o.error.unwrap_or_default(),
                    has_history: o.has_history,
                })
                .collect(),
        }))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let (who, _) = admit(&request, Rpc::History)?;
        let req = request.into_inner();
        let (fleet, tenant) = wire::tenant_ref(req.fleet, req.tenant)?;
        who.may_on(Rpc::History, &fleet)?;
        let history = self
            .0
            .history(&fleet, &tenant)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new((&history).into()))
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::Repair)?;
        let req: RepairRequest = receive(request)?;
        who.may_on(Rpc::Repair, &req.fleet)?;
        let outcomes = self.0.repair(req, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new(super::send::repair(&outcomes)))
    }
}
