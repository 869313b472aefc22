//! `avocet.v1.Rollouts`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, rollouts_server::Rollouts};
use tonic::{Request, Response, Status};

use super::{ApiError, EventStream, caller, events_of, receive};
use crate::engine::{Engine, ListRequest};

/// The Rollouts service.
pub(crate) struct RolloutsService(pub(super) Arc<Engine>);

#[tonic::async_trait]
impl Rollouts for RolloutsService {
    type WatchStream = EventStream;

    async fn get(
        &self,
        request: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        let rollout = self.0.rollout(id).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }

    async fn list(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        let req = ListRequest::try_from(request.into_inner())?;
        let page = self.0.rollouts(req).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListRolloutsResponse {
            rollouts: page.rollouts.iter().map(pb::Rollout::from).collect(),
            next_page_token: page.next_page.unwrap_or_default(),
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        Ok(events_of(&self.0, id, req.after_seq).await?)
    }

    async fn cancel(
        &self,
        request: Request<pb::RolloutRef>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let caller = caller(&request, "avocet.v1.Rollouts/Cancel");
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        let rollout = self.0.cancel(id, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }

    async fn pause(
        &self,
        request: Request<pb::RolloutRef>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let caller = caller(&request, "avocet.v1.Rollouts/Pause");
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        let rollout = self.0.pause(id, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }

    async fn resume(
        &self,
        request: Request<pb::RolloutRef>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let caller = caller(&request, "avocet.v1.Rollouts/Resume");
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        let rollout = self.0.resume(id, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }
}
