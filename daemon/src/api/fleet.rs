//! `avocet.v1.Fleet`.

use avocet_proto::v1::{self as pb, fleet_server::Fleet};
use tonic::{Request, Response, Status};

use super::{Api, ApiError, convert};

/// The Fleet service.
pub struct FleetService(pub Api);

#[tonic::async_trait]
impl Fleet for FleetService {
    async fn list_fleets(
        &self,
        _request: Request<pb::ListFleetsRequest>,
    ) -> Result<Response<pb::ListFleetsResponse>, Status> {
        let mut fleets = Vec::new();
        for fleet in self.0.engine.registry().fleets() {
            let set = fleet.load_set().map_err(ApiError::from)?;
            fleets.push(pb::FleetInfo {
                name: fleet.name.clone(),
                dialect: fleet.dialect.as_str().to_owned(),
                tenant_count: fleet.tenants.len() as u32,
                migration_count: set.len() as u32,
                latest_version: set.latest(),
            });
        }
        Ok(Response::new(pb::ListFleetsResponse { fleets }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let req = request.into_inner();
        let name = convert::fleet_name(&req.fleet)?;
        let fleet = self
            .0
            .engine
            .registry()
            .fleet(name)
            .map_err(ApiError::from)?;
        let tenants = fleet
            .select(&convert::selector(req.selector)?)
            .map_err(ApiError::from)?
            .iter()
            .map(|t| pb::TenantInfo {
                id: t.id.clone(),
                labels: t.labels.clone().into_iter().collect(),
                schema: t.schema.clone().unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListTenantsResponse {
            fleet: fleet.name.clone(),
            tenants,
        }))
    }
}
