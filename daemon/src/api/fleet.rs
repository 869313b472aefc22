//! `avocet.v1.Fleet`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, fleet_server::Fleet};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{ApiError, STREAM_BUFFER, admit, receive};
use crate::{auth::Rpc, engine::Engine};

/// The Fleet service.
pub(crate) struct FleetService(pub(super) Arc<Engine>);

#[tonic::async_trait]
impl Fleet for FleetService {
    type CensusStream = ReceiverStream<Result<pb::CensusEvent, Status>>;

    async fn census(
        &self,
        request: Request<pb::CensusRequest>,
    ) -> Result<Response<Self::CensusStream>, Status> {
        let (who, _) = admit(&request, Rpc::Census)?;
        let (req, export) = receive::census(request.into_inner())?;
        who.may_on(Rpc::Census, &req.fleet)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        if export {
            let tenant = req.focus.clone().unwrap_or_default();
            let model = self
                .0
                .schema(&req.fleet, &tenant)
                .await
                .map_err(ApiError::from)?;
            let result = pb::CensusResult {
                fleet: req.fleet,
                tenants: 1,
                model_json: model.canonical_json(req.options),
                ..Default::default()
            };
            let event = pb::CensusEvent {
                event: Some(pb::census_event::Event::Result(result)),
            };
            let _ = tx.send(Ok(event)).await;
            return Ok(Response::new(ReceiverStream::new(rx)));
        }
        let engine = self.0.clone();
        tokio::spawn(async move {
            let (progress_tx, mut progress_rx) = mpsc::channel(STREAM_BUFFER);
            let census = engine.census(req, progress_tx);
            let mut census = std::pin::pin!(census);
            let progress_event = |p: crate::engine::CensusProgress| pb::CensusEvent {
                event: Some(pb::census_event::Event::Progress(pb::CensusProgress {
                    done: p.done,
                    total: p.total,
                })),
            };
            let result = loop {
                tokio::select! {
                    biased;
                    Some(p) = progress_rx.recv() => {
                        // A gone client stops the census.
                        if tx.send(Ok(progress_event(p))).await.is_err() {
                            return;
                        }
                    }
                    result = &mut census => break result,
                }
            };
            // Reports sent just before the census ended.
            while let Ok(p) = progress_rx.try_recv() {
                if tx.send(Ok(progress_event(p))).await.is_err() {
                    return;
                }
            }
            let item = result
                .map(|c| pb::CensusEvent {
                    event: Some(pb::census_event::Event::Result((&c).into())),
                })
                .map_err(|e| Status::from(ApiError::from(e)));
            let _ = tx.send(item).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_fleets(
        &self,
        request: Request<pb::ListFleetsRequest>,
    ) -> Result<Response<pb::ListFleetsResponse>, Status> {
        let (who, _) = admit(&request, Rpc::ListFleets)?;
        let fleets = self.0.fleets();
        Ok(Response::new(pb::ListFleetsResponse {
            fleets: fleets
                .iter()
                .filter(|f| who.sees(&f.name))
                .map(pb::FleetInfo::from)
                .collect(),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let (who, _) = admit(&request, Rpc::ListTenants)?;
        let (fleet, selector) = receive::list_tenants(request.into_inner())?;
        who.may_on(Rpc::ListTenants, &fleet)?;
        let tenants = self
            .0
            .tenants(&fleet, &selector)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListTenantsResponse {
            fleet,
            tenants: tenants.iter().map(pb::TenantInfo::from).collect(),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        let (who, _) = admit(&request, Rpc::GetTenant)?;
        let req = request.into_inner();
        let (fleet, tenant) = receive::tenant_ref(req.fleet, req.tenant)?;
        who.may_on(Rpc::GetTenant, &fleet)?;
        let info = self.0.tenant(&fleet, &tenant).map_err(ApiError::from)?;
        Ok(Response::new(pb::TenantInfo::from(&info)))
    }

    async fn register_tenant(
        &self,
        request: Request<pb::RegisterTenantRequest>,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        let (who, caller) = admit(&request, Rpc::RegisterTenant)?;
        let registration = receive::registration(request.into_inner())?;
        who.may_on(Rpc::RegisterTenant, &registration.fleet)?;
        let info = self
            .0
            .register_tenant(registration, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::TenantInfo::from(&info)))
    }

    async fn deregister_tenant(
        &self,
        request: Request<pb::DeregisterTenantRequest>,
    ) -> Result<Response<pb::DeregisterTenantResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::DeregisterTenant)?;
        let req = request.into_inner();
        let (fleet, tenant) = receive::tenant_ref(req.fleet, req.tenant)?;
        who.may_on(Rpc::DeregisterTenant, &fleet)?;
        self.0
            .deregister_tenant(&fleet, &tenant, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeregisterTenantResponse {}))
    }

    async fn refresh_tenants(
        &self,
        request: Request<pb::RefreshTenantsRequest>,
    ) -> Result<Response<pb::RefreshTenantsResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::RefreshTenants)?;
        let fleet = receive::fleet_ref(request.into_inner().fleet)?;
        who.may_on(Rpc::RefreshTenants, &fleet)?;
        tracing::info!(fleet, caller = %caller.who, "tenants refresh asked");
        let r = self
            .0
            .refresh_tenants(&fleet)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RefreshTenantsResponse {
            found: r.found as u32,
            added: r.added,
            removed: r.removed,
            changed: r.changed,
            rejected: r.rejected,
        }))
    }
}
