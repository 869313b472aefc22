//! Rollouts: one apply or rollback across selected tenants, run concurrently under a limit,
//! as a task that outlives the request that started it. Progress goes to the rollout's
//! event log, which streams read from.
//!
//! | file | what |
//! | --- | --- |
//! | `log.rs` | the event log of one rollout, and the index of recent rollouts |
//! | `tenant.rs` | one tenant: lock, plan under the lock, run the steps, report |
//! | `step.rs` | one step: transaction or statement by statement, and its history records |
//! | `batch.rs` | a transaction sent in as few requests as its size allows |
//! | `grouped.rs` | grouped mode: a tenant's steps in one transaction |
//! | `repair.rs` | rewriting a `failed` or `running` record under the tenant lock |

mod batch;
mod grouped;
mod log;
mod repair;
mod step;
mod tenant;

use std::{collections::HashMap, sync::Arc, time::Instant};

use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

pub use log::RolloutLog;
pub(crate) use log::Rollouts;
pub(crate) use repair::{RepairError, repair};

use crate::{
    fleet::{Fleet, Registry, Tenant},
    model::{
        ApplyOptions, Direction, EventKind, MigrationSet, RollbackTarget, RolloutStarted,
        RolloutSummary, TenantOutcome, TransactionMode,
    },
    telemetry::Metrics,
};

/// What a rollout does on each tenant.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation {
    /// Apply pending migrations.
    Apply(ApplyOptions),
    /// Roll back applied migrations.
    Rollback(RollbackTarget),
}

impl Operation {
    /// `Up` for an apply, `Down` for a rollback.
    pub(crate) fn direction(&self) -> Direction {
        match self {
            Self::Apply(_) => Direction::Up,
            Self::Rollback(_) => Direction::Down,
        }
    }
}

/// A validated request to start a rollout.
pub(crate) struct RolloutRequest {
    /// The fleet.
    pub fleet: Arc<Fleet>,
    /// The selected tenants, in order; they start in this order.
    pub tenants: Vec<Arc<Tenant>>,
    /// The migration set, pinned for the whole rollout.
    pub set: Arc<MigrationSet>,
    /// Apply or rollback.
    pub op: Operation,
    /// Tenants run at once (at least 1).
    pub concurrency: usize,
    /// Plan only: no lock, no writes.
    pub dry_run: bool,
    /// Start no further tenant once one has failed.
    pub stop_on_first_failure: bool,
    /// One transaction per migration, or one per tenant.
    pub transaction: TransactionMode,
}

/// Shared state of one running rollout.
pub(crate) struct RolloutCtx {
    log: Arc<RolloutLog>,
    fleet: Arc<Fleet>,
    set: Arc<MigrationSet>,
    op: Operation,
    dry_run: bool,
    transaction: TransactionMode,
    registry: Arc<Registry>,
    metrics: Metrics,
    /// Cancelled on daemon shutdown: tenants stop between migrations.
    cancel: CancellationToken,
}

/// Starts rollouts and keeps their logs; shutdown waits for them.
pub(crate) struct Runner {
    registry: Arc<Registry>,
    rollouts: Rollouts,
    metrics: Metrics,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Runner {
    /// A runner over `registry`; `shutdown` tells running rollouts to stop between
    /// migrations.
    pub(crate) fn new(registry: Arc<Registry>, shutdown: CancellationToken) -> Self {
        Self {
            registry,
            rollouts: Rollouts::default(),
            metrics: Metrics::default(),
            shutdown,
            tracker: TaskTracker::new(),
        }
    }

    /// True once shutdown has begun; new rollouts are refused.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Running and recent rollouts.
    pub(crate) fn rollouts(&self) -> &Rollouts {
        &self.rollouts
    }

    /// Starts a rollout in the background and returns its log at once. The rollout runs to
    /// the end even if nobody reads the log.
    pub(crate) fn start(&self, req: RolloutRequest) -> Arc<RolloutLog> {
        let log = self.rollouts.create();
        let ctx = Arc::new(RolloutCtx {
            log: log.clone(),
            fleet: req.fleet.clone(),
            set: req.set.clone(),
            op: req.op,
            dry_run: req.dry_run,
            transaction: req.transaction,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            cancel: self.shutdown.child_token(),
        });
        let span = tracing::info_span!(
            "rollout",
            rollout_id = %log.id,
            fleet = %req.fleet.name,
            direction = req.op.direction().as_str(),
            tenants = req.tenants.len(),
        );
        self.tracker.spawn(run(ctx, req).instrument(span));
        log
    }

    /// Waits until every rollout task has ended (call after cancelling `shutdown`).
    pub(crate) async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn run(ctx: Arc<RolloutCtx>, req: RolloutRequest) {
    let clock = Instant::now();
    let direction = req.op.direction();
    ctx.metrics.rollout(&req.fleet.name, direction.as_str());
    ctx.log.append(EventKind::RolloutStarted(RolloutStarted {
        fleet: req.fleet.name.clone(),
        direction,
        tenant_count: req.tenants.len() as u32,
        concurrency: req.concurrency as u32,
        dry_run: req.dry_run,
    }));
    tracing::info!("rollout started");
    let limit = Arc::new(Semaphore::new(req.concurrency.max(1)));
    let stop = ctx.cancel.child_token();
    let mut running = JoinSet::new();
    let mut tenants_by_task = HashMap::new();
    let mut summary = RolloutSummary::default();
    for tenant in req.tenants {
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            permit = limit.clone().acquire_owned() => permit.ok(),
        };
        let Some(permit) = permit else {
            summary.count(&ctx.finish_tenant(&tenant, tenant::TenantReport::skipped(), 0));
            continue;
        };
        let task_tenant = tenant.clone();
        let ctx = ctx.clone();
        let stop = stop.clone();
        let stop_on_failure = req.stop_on_first_failure;
        let handle = running.spawn(
            async move {
                let finished = ctx.run_tenant(&tenant).await;
                if stop_on_failure && finished.outcome == TenantOutcome::Failed {
                    stop.cancel();
                }
                drop(permit);
                finished
            }
            .in_current_span(),
        );
        tenants_by_task.insert(handle.id(), task_tenant);
    }
    while let Some(done) = running.join_next_with_id().await {
        match done {
            Ok((_, finished)) => summary.count(&finished),
            Err(e) => {
                // A bug, not a database error: report it as the tenant's failure.
                let tenant = &tenants_by_task[&e.id()];
                let report = tenant::TenantReport::panicked(&tenant.id, &e.to_string());
                summary.count(&ctx.finish_tenant(tenant, report, 0));
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
    ctx.log.append(EventKind::RolloutFinished(summary));
}
