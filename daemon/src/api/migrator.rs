//! `avocet.v1.Migrator`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, migrator_server::Migrator};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ApiError;
use crate::engine::{
    ApplyRequest, Engine, PlanRequest, ReadRequest, RepairRequest, RollbackRequest, RolloutLog,
};

/// Events buffered per stream before the forwarder waits for the client.
const STREAM_BUFFER: usize = 64;

/// The Migrator service.
pub(crate) struct MigratorService(pub(super) Arc<Engine>);

type EventStream = ReceiverStream<Result<pb::RolloutEvent, Status>>;

/// Converts a wire request on receipt.
fn receive<W, D: TryFrom<W, Error = ApiError>>(request: Request<W>) -> Result<D, ApiError> {
    D::try_from(request.into_inner())
}

/// Forwards a rollout's events to a bounded channel; stops when the client goes away. The
/// rollout itself never waits for this stream.
fn follow(log: Arc<RolloutLog>) -> Response<EventStream> {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let events = log.next_after(seen).await;
            if events.is_empty() {
                return;
            }
            for event in &events {
                seen = event.seq;
                if tx.send(Ok(pb::RolloutEvent::from(event))).await.is_err() {
                    return;
                }
            }
        }
    });
    Response::new(ReceiverStream::new(rx))
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
        let req: ApplyRequest = receive(request)?;
        Ok(follow(self.0.apply(req).map_err(ApiError::from)?))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<Self::RollbackStream>, Status> {
        let req: RollbackRequest = receive(request)?;
        Ok(follow(self.0.rollback(req).map_err(ApiError::from)?))
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
        let req: ReadRequest = receive(request)?;
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
