//! `avocet.v1.Migrator`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, migrator_server::Migrator};
use tonic::{Request, Response, Status};

use super::{ApiError, EventStream, caller, events_of};
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
        let req: PlanRequest = receive(request)?;
        let plan = self.0.plan(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&plan).into()))
    }

    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<Self::ApplyStream>, Status> {
        let caller = caller(&request, "avocet.v1.Migrator/Apply");
        let req: ApplyRequest = receive(request)?;
        let id = self.0.apply(req, caller).await.map_err(ApiError::from)?;
        Ok(events_of(&self.0, &id, 0).await?)
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<Self::RollbackStream>, Status> {
        let caller = caller(&request, "avocet.v1.Migrator/Rollback");
        let req: RollbackRequest = receive(request)?;
        let id = self.0.rollback(req, caller).await.map_err(ApiError::from)?;
        Ok(events_of(&self.0, &id, 0).await?)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let req: ReadRequest = receive(request)?;
        let verification = self.0.verify(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&verification).into()))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let req: StatusRequest = receive(request)?;
        let status = self.0.status(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&status).into()))
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResponse>, Status> {
        let req: RepairRequest = receive(request)?;
        let outcome = self.0.repair(req).await.map_err(ApiError::from)?;
        Ok(Response::new((&outcome).into()))
    }
}
