//! `avocet.v1.Rollouts`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, rollouts_server::Rollouts};
use tonic::{Request, Response, Status};

use super::{ApiError, EventStream, admit, events_of, receive};
use crate::{
    auth::{Identity, Rpc},
    engine::{Engine, ListRequest},
};

/// The Rollouts service.
pub(crate) struct RolloutsService(pub(super) Arc<Engine>);

impl RolloutsService {
    /// Whether `who` may call `rpc` on rollout `id`'s fleet (read from the store only when
    /// `who` is scoped to some fleets).
    async fn may_on_rollout(&self, who: &Identity, rpc: Rpc, id: &str) -> Result<(), Status> {
        if who.sees_all() {
            return Ok(());
        }
        let rollout = self.0.rollout(id).await.map_err(ApiError::from)?;
        hidden(who, &rollout.spec.fleet, id)?;
        Ok(who.may_on(rpc, &rollout.spec.fleet)?)
    }
}

/// A rollout of a fleet `who` may not see is `NOT_FOUND`, as an unknown id is: its answer
/// says nothing of whether it exists or which fleet it is of (issue 25, finding 21).
fn hidden(who: &Identity, fleet: &str, id: &str) -> Result<(), Status> {
    match who.sees(fleet) {
        true => Ok(()),
        false => {
            Err(ApiError::from(crate::engine::EngineError::UnknownRollout(id.to_owned())).into())
        }
    }
}

#[tonic::async_trait]
impl Rollouts for RolloutsService {
    type WatchStream = EventStream;

    async fn get(
        &self,
        request: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let (who, _) = admit(&request, Rpc::GetRollout)?;
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        let rollout = self.0.rollout(id).await.map_err(ApiError::from)?;
        hidden(&who, &rollout.spec.fleet, id)?;
        who.may_on(Rpc::GetRollout, &rollout.spec.fleet)?;
        Ok(Response::new((&rollout).into()))
    }

    async fn list(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        let (who, _) = admit(&request, Rpc::ListRollouts)?;
        let req = ListRequest::try_from(request.into_inner())?;
        if let Some(fleet) = &req.fleet {
            who.may_on(Rpc::ListRollouts, fleet)?;
        }
        let page = self.0.rollouts(req).await.map_err(ApiError::from)?;
        // A caller scoped to some fleets sees only their rollouts (a page may then hold
        // fewer than its size; the token still leads to the next one).
        Ok(Response::new(pb::ListRolloutsResponse {
            rollouts: page
                .rollouts
                .iter()
                .filter(|r| who.sees(&r.spec.fleet))
                .map(pb::Rollout::from)
                .collect(),
            next_page_token: page.next_page.unwrap_or_default(),
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (who, _) = admit(&request, Rpc::Watch)?;
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        self.may_on_rollout(&who, Rpc::Watch, id).await?;
        Ok(events_of(&self.0, id, req.after_seq).await?)
    }

    async fn cancel(
        &self,
        request: Request<pb::RolloutRef>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let (who, caller) = admit(&request, Rpc::Cancel)?;
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        self.may_on_rollout(&who, Rpc::Cancel, id).await?;
        let rollout = self.0.cancel(id, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }

    async fn pause(
        &self,
        request: Request<pb::RolloutRef>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let (who, caller) = admit(&request, Rpc::Pause)?;
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        self.may_on_rollout(&who, Rpc::Pause, id).await?;
        let rollout = self.0.pause(id, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }

    async fn resume(
        &self,
        request: Request<pb::RolloutRef>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let (who, caller) = admit(&request, Rpc::Resume)?;
        let req = request.into_inner();
        let id = receive::rollout_id(&req.id)?;
        self.may_on_rollout(&who, Rpc::Resume, id).await?;
        let rollout = self.0.resume(id, &caller).await.map_err(ApiError::from)?;
        Ok(Response::new((&rollout).into()))
    }
}
