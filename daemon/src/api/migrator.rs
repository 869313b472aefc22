//! `avocet.v1.Migrator`.

use std::{collections::BTreeMap, sync::Arc};

use avocet_proto::v1::{self as pb, migrator_server::Migrator};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{Api, ApiError, convert, reads};
use crate::{
    dialect::{RecordStatus, RecordWrite},
    fleet::{Fleet, Tenant},
    plan::{self, ApplyOptions, Diagnostic},
    rollout::{Operation, RolloutLog, RolloutRequest},
    wire,
};

/// Events buffered per stream before the forwarder waits for the client.
const STREAM_BUFFER: usize = 64;

/// The Migrator service.
pub struct MigratorService(pub Api);

type EventStream = ReceiverStream<Result<pb::RolloutEvent, Status>>;

impl MigratorService {
    fn fleet(&self, name: &str) -> Result<Arc<Fleet>, ApiError> {
        let name = convert::fleet_name(name)?;
        Ok(self.0.engine.registry().fleet(name)?.clone())
    }

    /// Starts a rollout and streams its log; the rollout goes on if the client leaves.
    fn start(&self, req: RolloutRequest) -> Result<Response<EventStream>, ApiError> {
        if self.0.engine.is_shutting_down() {
            return Err(ApiError::ShuttingDown);
        }
        let log = self.0.engine.start(req);
        Ok(Response::new(follow(log)))
    }
}

/// Forwards a rollout's events to a bounded channel; stops when the client goes away.
fn follow(log: Arc<RolloutLog>) -> EventStream {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let events = log.next_after(seen).await;
            if events.is_empty() {
                return;
            }
            for event in events {
                seen = event.seq;
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

fn unreachable_plan(tenant: &Tenant, e: &crate::dialect::DbError) -> pb::TenantPlan {
    pb::TenantPlan {
        tenant: tenant.id.clone(),
        diagnostics: vec![wire::diagnostic(&Diagnostic::unreachable(&e.to_string()))],
        blocked: true,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Migrator for MigratorService {
    type ApplyStream = EventStream;
    type RollbackStream = EventStream;

    async fn plan(
        &self,
        request: Request<pb::PlanRequest>,
    ) -> Result<Response<pb::PlanResponse>, Status> {
        let req = request.into_inner();
        let fleet = self.fleet(&req.fleet)?;
        let tenants = fleet
            .select(&convert::selector(req.selector)?)
            .map_err(ApiError::from)?;
        let set = fleet.load_set().map_err(ApiError::from)?;
        let opts = ApplyOptions {
            target: convert::target_version(&fleet.name, &set, req.target_version)?,
            allow_out_of_order: req.allow_out_of_order,
        };
        let registry = self.0.engine.registry();
        let plans = reads::histories(registry, tenants, fleet.concurrency)
            .await
            .into_iter()
            .map(|(tenant, history)| match history {
                Ok(h) => {
                    wire::tenant_plan(&tenant.id, &plan::plan_apply(&set, &h, opts, fleet.dialect))
                }
                Err(e) => unreachable_plan(&tenant, &e),
            })
            .collect();
        Ok(Response::new(pb::PlanResponse {
            fleet: fleet.name.clone(),
            tenants: plans,
        }))
    }

    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<Self::ApplyStream>, Status> {
        let req = request.into_inner();
        let fleet = self.fleet(&req.fleet)?;
        let tenants = fleet
            .select(&convert::selector(req.selector)?)
            .map_err(ApiError::from)?;
        let set = fleet.load_set().map_err(ApiError::from)?;
        let opts = ApplyOptions {
            target: convert::target_version(&fleet.name, &set, req.target_version)?,
            allow_out_of_order: req.allow_out_of_order,
        };
        let concurrency = convert::concurrency(req.concurrency, fleet.concurrency)?;
        Ok(self.start(RolloutRequest {
            fleet,
            tenants,
            set: Arc::new(set),
            op: Operation::Apply(opts),
            concurrency,
            dry_run: req.dry_run,
            stop_on_first_failure: req.stop_on_first_failure,
        })?)
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<Self::RollbackStream>, Status> {
        let req = request.into_inner();
        let fleet = self.fleet(&req.fleet)?;
        let tenants = fleet
            .select(&convert::selector(req.selector)?)
            .map_err(ApiError::from)?;
        let set = fleet.load_set().map_err(ApiError::from)?;
        let target = convert::rollback_target(req.target)?;
        let concurrency = convert::concurrency(req.concurrency, fleet.concurrency)?;
        Ok(self.start(RolloutRequest {
            fleet,
            tenants,
            set: Arc::new(set),
            op: Operation::Rollback(target),
            concurrency,
            dry_run: req.dry_run,
            stop_on_first_failure: req.stop_on_first_failure,
        })?)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let req = request.into_inner();
        let fleet = self.fleet(&req.fleet)?;
        let tenants = fleet
            .select(&convert::selector(req.selector)?)
            .map_err(ApiError::from)?;
        let set = fleet.load_set().map_err(ApiError::from)?;
        let registry = self.0.engine.registry();
        let tenants = reads::histories(registry, tenants, fleet.concurrency)
            .await
            .into_iter()
            .map(|(tenant, history)| {
                let (current, pending, diagnostics) = match history {
                    Ok(h) => (
                        plan::current_version(&h),
                        plan::pending(&set, &h, None).count() as u32,
                        plan::check_history(&set, &h, fleet.dialect),
                    ),
                    Err(e) => (None, 0, vec![Diagnostic::unreachable(&e.to_string())]),
                };
                pb::TenantVerification {
                    tenant: tenant.id.clone(),
                    current_version: current,
                    pending,
                    ok: diagnostics.is_empty(),
                    diagnostics: diagnostics.iter().map(wire::diagnostic).collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::VerifyResponse {
            fleet: fleet.name.clone(),
            tenants,
        }))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let req = request.into_inner();
        let fleet = self.fleet(&req.fleet)?;
        let tenants = fleet
            .select(&convert::selector(req.selector)?)
            .map_err(ApiError::from)?;
        let set = fleet.load_set().map_err(ApiError::from)?;
        let registry = self.0.engine.registry();
        let mut resp = pb::StatusResponse {
            fleet: fleet.name.clone(),
            latest_version: set.latest(),
            tenant_count: tenants.len() as u32,
            ..Default::default()
        };
        let mut versions: BTreeMap<Option<i64>, u32> = BTreeMap::new();
        for (tenant, history) in reads::histories(registry, tenants, fleet.concurrency).await {
            let mut status = pb::TenantStatus {
                tenant: tenant.id.clone(),
                ..Default::default()
            };
            match history {
                Ok(h) => {
                    status.current_version = plan::current_version(&h);
                    status.pending = plan::pending(&set, &h, None).count() as u32;
                    status.failed_versions = h
                        .iter()
                        .filter(|r| {
                            matches!(r.status, RecordStatus::Failed | RecordStatus::Running)
                        })
                        .map(|r| r.version)
                        .collect();
                    *versions.entry(status.current_version).or_default() += 1;
                    if !status.failed_versions.is_empty() {
                        resp.failed += 1;
                    } else if status.pending > 0 {
                        resp.pending += 1;
                    } else {
                        resp.up_to_date += 1;
                    }
                }
                Err(e) => {
                    status.error = e.to_string();
                    resp.unreachable += 1;
                }
            }
            resp.tenants.push(status);
        }
        resp.versions = versions
            .into_iter()
            .map(|(version, tenants)| pb::VersionCount { version, tenants })
            .collect();
        Ok(Response::new(resp))
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResponse>, Status> {
        let req = request.into_inner();
        let fleet = self.fleet(&req.fleet)?;
        let selector = crate::fleet::Selector {
            ids: vec![req.tenant.clone()],
            ..Default::default()
        };
        let tenant = fleet
            .select(&selector)
            .map_err(ApiError::from)?
            .pop()
            .ok_or_else(|| ApiError::InvalidArgument("tenant is required".into()))?;
        let new_status = match pb::RepairAction::try_from(req.action) {
            Ok(pb::RepairAction::MarkApplied) => RecordStatus::Applied,
            Ok(pb::RepairAction::MarkRolledBack) => RecordStatus::RolledBack,
            _ => {
                return Err(ApiError::InvalidArgument(
                    "action must be MARK_APPLIED or MARK_ROLLED_BACK".into(),
                )
                .into());
            }
        };
        let set = fleet.load_set().map_err(ApiError::from)?;
        let previous = repair(&self.0, &fleet, &tenant, &set, req.version, new_status).await?;
        Ok(Response::new(pb::RepairResponse {
            tenant: tenant.id.clone(),
            version: req.version,
            previous_status: previous.to_string(),
        }))
    }
}

/// Rewrites a `failed` or `running` record under the tenant lock.
async fn repair(
    api: &Api,
    fleet: &Fleet,
    tenant: &Tenant,
    set: &crate::catalog::MigrationSet,
    version: i64,
    status: RecordStatus,
) -> Result<RecordStatus, ApiError> {
    let db_err = |source| ApiError::Tenant {
        fleet: fleet.name.clone(),
        tenant: tenant.id.clone(),
        source,
    };
    let _budget = api.engine.registry().connections(2).await;
    let lock = tenant.db.lock(fleet.lock_timeout).await.map_err(db_err)?;
    let result = async {
        let mut session = tenant.db.connect().await.map_err(db_err)?;
        let outcome = async {
            let history = session.read_history().await.map_err(db_err)?;
            let record = history
                .iter()
                .find(|r| r.version == version)
                .filter(|r| matches!(r.status, RecordStatus::Failed | RecordStatus::Running))
                .ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "fleet {:?}, tenant {:?}: version {version} has no failed or running record",
                        fleet.name, tenant.id
                    ))
                })?;
            let migration = set.get(version).ok_or_else(|| {
                ApiError::FailedPrecondition(format!(
                    "fleet {:?}: version {version} is not in the migration set",
                    fleet.name
                ))
            })?;
            let now = chrono::Utc::now();
            let rec = RecordWrite {
                version,
                name: migration.name.clone(),
                checksum: migration.up.checksum.clone(),
                status,
                batch: record.batch,
                rollout_id: "repair".into(),
                applied_by: api.engine.registry().instance_id.clone(),
                started_at: now,
                finished_at: Some(now),
                duration_ms: Some(0),
                error: record.error.clone(),
                statements_done: record.statements_done,
                statements_total: record.statements_total,
                rolled_back_at: (status == RecordStatus::RolledBack).then_some(now),
                direction: match status {
                    RecordStatus::RolledBack => crate::plan::Direction::Down,
                    _ => crate::plan::Direction::Up,
                },
            };
            session.write_record(&rec).await.map_err(db_err)?;
            session.append_log(&rec).await.map_err(db_err)?;
            Ok(record.status)
        }
        .await;
        session.close().await;
        outcome
    }
    .await;
    if let Err(e) = lock.release().await {
        tracing::warn!(tenant = %tenant.id, "releasing the tenant lock: {e}");
    }
    result
}
