//! Rollouts: one apply or rollback across selected tenants, run concurrently under a limit,
//! as a task that outlives the request that started it. Progress goes to the rollout's
//! event log, which streams read from.

mod log;
mod step;
mod tenant;

use std::{sync::Arc, time::Instant};

use avocet_proto::v1::{self as pb, rollout_event::Kind};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

pub use log::{RolloutLog, Rollouts};

use crate::{
    catalog::MigrationSet,
    fleet::{Fleet, Registry, Tenant},
    plan::{ApplyOptions, Direction, RollbackTarget},
    telemetry::Metrics,
    wire,
};

/// What a rollout does on each tenant.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    /// Apply pending migrations.
    Apply(ApplyOptions),
    /// Roll back applied migrations.
    Rollback(RollbackTarget),
}

/// A validated request to start a rollout.
pub struct RolloutRequest {
    /// The fleet.
    pub fleet: Arc<Fleet>,
    /// The selected tenants, in order; waves start in this order.
    pub tenants: Vec<Arc<Tenant>>,
    /// The migration set, loaded once for the whole rollout.
    pub set: Arc<MigrationSet>,
    /// Apply or rollback.
    pub op: Operation,
    /// Tenants run at once (at least 1).
    pub concurrency: usize,
    /// Plan only: no lock, no writes.
    pub dry_run: bool,
    /// Start no further tenant once one has failed.
    pub stop_on_first_failure: bool,
}

/// Shared state of one running rollout.
pub(crate) struct RolloutCtx {
    log: Arc<RolloutLog>,
    fleet: Arc<Fleet>,
    set: Arc<MigrationSet>,
    op: Operation,
    dry_run: bool,
    registry: Arc<Registry>,
    metrics: Metrics,
    /// Cancelled on daemon shutdown: tenants stop between migrations.
    cancel: CancellationToken,
}

impl RolloutCtx {
    fn direction(&self) -> Direction {
        match self.op {
            Operation::Apply(_) => Direction::Up,
            Operation::Rollback(_) => Direction::Down,
        }
    }
}

/// Starts rollouts and keeps their logs; shutdown waits for them.
pub struct Engine {
    registry: Arc<Registry>,
    rollouts: Rollouts,
    metrics: Metrics,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Engine {
    /// An engine over `registry`; `shutdown` tells running rollouts to stop between
    /// migrations.
    pub fn new(registry: Arc<Registry>, shutdown: CancellationToken) -> Self {
        Self {
            registry,
            rollouts: Rollouts::default(),
            metrics: Metrics::default(),
            shutdown,
            tracker: TaskTracker::new(),
        }
    }

    /// The fleet registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// True once shutdown has begun; new rollouts are refused.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Running and recent rollouts.
    pub fn rollouts(&self) -> &Rollouts {
        &self.rollouts
    }

    /// Starts a rollout in the background and returns its log at once. The rollout runs to
    /// the end even if nobody reads the log.
    pub fn start(&self, req: RolloutRequest) -> Arc<RolloutLog> {
        let log = self.rollouts.create();
        let ctx = Arc::new(RolloutCtx {
            log: log.clone(),
            fleet: req.fleet.clone(),
            set: req.set.clone(),
            op: req.op,
            dry_run: req.dry_run,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            cancel: self.shutdown.child_token(),
        });
        let span = tracing::info_span!(
            "rollout",
            rollout_id = %log.id,
            fleet = %req.fleet.name,
            direction = ctx.direction().as_str(),
            tenants = req.tenants.len(),
        );
        self.tracker.spawn(run(ctx, req).instrument(span));
        log
    }

    /// Waits until every rollout task has ended (call after cancelling `shutdown`).
    pub async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn run(ctx: Arc<RolloutCtx>, req: RolloutRequest) {
    let clock = Instant::now();
    let direction = ctx.direction();
    ctx.metrics.rollout(&req.fleet.name, direction.as_str());
    ctx.log.append(Kind::RolloutStarted(pb::RolloutStarted {
        fleet: req.fleet.name.clone(),
        direction: wire::direction(direction) as i32,
        tenant_count: req.tenants.len() as u32,
        concurrency: req.concurrency as u32,
        dry_run: req.dry_run,
    }));
    tracing::info!("rollout started");
    let limit = Arc::new(Semaphore::new(req.concurrency.max(1)));
    let stop = ctx.cancel.child_token();
    let mut running = JoinSet::new();
    let mut tenants_by_task = std::collections::HashMap::new();
    let mut summary = pb::RolloutFinished::default();
    for tenant in req.tenants {
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            permit = limit.clone().acquire_owned() => Some(permit.expect("limit never closed")),
        };
        let Some(permit) = permit else {
            tally(
                &mut summary,
                &ctx.finish_tenant(&tenant, tenant::TenantReport::skipped(), 0),
            );
            continue;
        };
        let task_tenant = tenant.clone();
        let ctx = ctx.clone();
        let stop = stop.clone();
        let stop_on_failure = req.stop_on_first_failure;
        let handle = running.spawn(
            async move {
                let report = ctx.run_tenant(&tenant).await;
                if stop_on_failure && report.outcome == pb::TenantOutcome::Failed {
                    stop.cancel();
                }
                drop(permit);
                report
            }
            .in_current_span(),
        );
        tenants_by_task.insert(handle.id(), task_tenant);
    }
    while let Some(done) = running.join_next_with_id().await {
        match done {
            Ok((_, report)) => tally(&mut summary, &report),
            Err(e) => {
                // A bug, not a database error: report it as the tenant's failure.
                let tenant = &tenants_by_task[&e.id()];
                let report = tenant::TenantReport::panicked(&tenant.id, &e.to_string());
                tally(&mut summary, &ctx.finish_tenant(tenant, report, 0));
                if req.stop_on_first_failure {
                    stop.cancel();
                }
            }
        }
    }
    summary.duration_ms = clock.elapsed().as_millis() as u64;
    tracing::info!(
        succeeded = summary.succeeded,
        failed = summary.failed,
        skipped = summary.skipped,
        "rollout finished"
    );
    ctx.log.append(Kind::RolloutFinished(summary));
}

fn tally(summary: &mut pb::RolloutFinished, report: &tenant::TenantReport) {
    summary.migrations_run += report.migrations_run;
    match report.outcome {
        pb::TenantOutcome::Failed => summary.failed += 1,
        pb::TenantOutcome::Skipped => summary.skipped += 1,
        _ => summary.succeeded += 1,
    }
}
