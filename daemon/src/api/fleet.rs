//! `avocet.v1.Fleet`.

use std::sync::Arc;

use avocet_proto::v1::{self as pb, fleet_server::Fleet};
use tonic::{Request, Response, Status};

use super::{ApiError, admit, receive};
use crate::{auth::Rpc, engine::Engine};

/// The Fleet service.
pub(crate) struct FleetService(pub(super) Arc<Engine>);

#[tonic::async_trait]
impl Fleet for FleetService {
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
