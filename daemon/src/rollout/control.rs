//! The runner: starts rollouts, pauses, resumes and cancels them, marks the ones a stopped
//! daemon left as interrupted, and at shutdown lets tenants in flight finish their
//! migration within the grace period.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{RolloutCtx, RunnerError, job, replica::Replica, writer::Writer};
use crate::{
    backup::Backups,
    fleet::{Fleet, Registry, Tenant},
    model::{
        Direction, EventKind, MigrationSet, Refused, RolloutRecord, RolloutSpec, RolloutStarted,
        RolloutState, RolloutStep, TenantWork, WorkState,
    },
    plan,
    store::{Changed, NewRollout, Store, StoreError},
    telemetry::{Metrics, db_system_name, record_trace_id},
};

/// Runs `task`; a panic in it becomes `Err` with the panic's message.
async fn unwound(task: impl Future<Output = ()>) -> Result<(), String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(task)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned())
        })
}

/// A rollout to start.
pub(crate) struct StartRequest {
    pub(crate) fleet: Arc<Fleet>,
    /// The selected tenants, in order.
    pub(crate) tenants: Vec<Arc<Tenant>>,
    pub(crate) set: Arc<MigrationSet>,
    pub(crate) spec: RolloutSpec,
    /// The request as JSON, for audit.
    pub(crate) request_json: String,
    /// Who asked, and through which method.
    pub(crate) caller: String,
    pub(crate) method: &'static str,
}

/// Starts and steers rollouts; one per daemon.
pub(crate) struct Runner {
    pub(super) registry: Arc<Registry>,
    pub(super) store: Arc<Store>,
    pub(super) writer: Writer,
    metrics: Metrics,
    /// Backups its tenants take before risky migrations, and requests' backups.
    backups: Arc<Backups>,
    pub(super) replica: Arc<Replica>,
    shutdown: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// Rollouts this daemon runs now.
    pub(super) active: Active,
    /// Rollouts this daemon declined to join (another set, a fleet it lacks): said once.
    pub(super) declined: Mutex<HashSet<String>>,
    /// Woken whenever a rollout stops running here (leaves [`Runner::active`]).
    ended: Arc<tokio::sync::Notify>,
}

/// Rollouts this daemon runs now, by id.
type Active = Arc<Mutex<HashMap<String, Arc<RolloutCtx>>>>;

impl Runner {
    /// A runner over `registry` and `store`, as replica `replica`, recording to `meter`'s instruments;
    /// cancelling `shutdown` stops every rollout starting tenants and leaves it interrupted
    /// (or to the other replicas).
    pub(crate) fn new(
        registry: Arc<Registry>,
        store: Arc<Store>,
        replica: Replica,
        shutdown: CancellationToken,
        meter: &opentelemetry::metrics::Meter,
    ) -> Self {
        Self {
            writer: Writer::start(store.clone()),
            registry,
            metrics: Metrics::new(meter),
            backups: Arc::new(Backups::new(store.clone(), meter)),
            store,
            replica: Arc::new(replica),
            shutdown,
            tracker: TaskTracker::new(),
            active: Active::default(),
            ended: Arc::default(),
            declined: Mutex::default(),
        }
    }

    /// The control store.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The backups: taken, recorded, restored.
    pub(crate) fn backups(&self) -> &Arc<Backups> {
        &self.backups
    }

    /// How far rollout `id`'s events are stored, while this daemon runs it.
    pub(crate) fn stored(&self, id: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.ctx(id).map(|_| self.writer.stored(id))
    }

    /// True once shutdown began; no rollout starts.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Rollouts of `fleet` this daemon runs now (its own and those it joined).
    pub(crate) fn running_in(&self, fleet: &str) -> usize {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.values().filter(|c| c.fleet.name == fleet).count()
    }

    /// Rollouts started by `identity` (a name, as [`identity_of`] reads it) this daemon
    /// runs now.
    pub(crate) fn running_by(&self, identity: &str) -> usize {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.values().filter(|c| c.identity == identity).count()
    }

    /// Rollouts of `fleet` in `direction` that change something (not dry runs) this daemon
    /// runs now.
    pub(crate) fn changing(&self, fleet: &str, direction: Direction) -> usize {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active
            .values()
            .filter(|c| {
                c.fleet.name == fleet && c.spec.op.direction() == direction && !c.spec.dry_run
            })
            .count()
    }

    /// Wakes its waiters whenever a rollout stops running here.
    pub(crate) fn ended(&self) -> Arc<tokio::sync::Notify> {
        self.ended.clone()
    }

    /// Rollouts this daemon runs now (its own and those it joined).
    pub(crate) fn running_here(&self) -> usize {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(super) fn ctx(&self, id: &str) -> Option<Arc<RolloutCtx>> {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.get(id).cloned()
    }

    /// Creates rollout `req` in the store and starts running it; returns its id.
    ///
    /// # Errors
    /// [`StoreError`] when the store refuses it; nothing runs then.
    pub(crate) async fn start(&self, req: StartRequest) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let waves = plan::waves(req.tenants.len(), &req.spec.strategy);
        let mut works = Vec::with_capacity(req.tenants.len());
        for w in &waves {
            for position in w.tenants.clone() {
                works.push(TenantWork {
                    tenant: req.tenants[position].id.clone(),
                    position: position as u32,
                    wave: w.index,
                    state: WorkState::Pending,
                    attempts: 0,
                    last_error: None,
                });
            }
        }
        self.store
            .create_rollout(&NewRollout {
                id: &id,
                spec: &req.spec,
                request_json: &req.request_json,
                created_by: &req.caller,
                method: req.method,
                waves: waves.len() as u32,
                works: &works,
            })
            .await?;
        self.metrics
            .rollout(&req.fleet.name, req.spec.op.direction().as_str());
        let started = RolloutStarted {
            fleet: req.fleet.name.clone(),
            direction: req.spec.op.direction(),
            tenant_count: works.len() as u32,
            concurrency: req.spec.strategy.concurrency,
            dry_run: req.spec.dry_run,
            strategy: req.spec.strategy,
            waves: waves.len() as u32,
        };
        // Tenants are claimed from the store: the rollout must be running there first.
        self.writer
            .change_state(&id, RolloutStep::Start, |_| {
                EventKind::RolloutStarted(started)
            })
            .await?;
        let record = self
            .store
            .rollout(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                context: "a rollout just created",
                message: "not found".into(),
            })?;
        // Only now, with nothing left to fail, does it take a place among the running.
        let ctx = self.context(
            &id,
            req.spec.clone(),
            req.fleet.clone(),
            req.set,
            &req.caller,
        );
        self.spawn(ctx, record);
        Ok(id)
    }

    /// The shared state of rollout `id`'s run here, started by `created_by` (as stored:
    /// `name (peer addr)`); it counts as running here once [`Runner::spawn`]ed.
    pub(super) fn context(
        &self,
        id: &str,
        spec: RolloutSpec,
        fleet: Arc<Fleet>,
        set: Arc<MigrationSet>,
        created_by: &str,
    ) -> Arc<RolloutCtx> {
        Arc::new(RolloutCtx {
            id: id.to_owned(),
            identity: identity_of(created_by).to_owned(),
            spec,
            fleet,
            set,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            backups: self.backups.clone(),
            writer: self.writer.clone(),
            store: self.store.clone(),
            replica: self.replica.clone(),
            paused: tokio::sync::watch::Sender::new(false),
            steered: std::sync::atomic::AtomicU64::new(0),
            cancelled: CancellationToken::new(),
            ended_elsewhere: CancellationToken::new(),
            shutdown: self.shutdown.child_token(),
            expected: Default::default(),
            census_expected: Default::default(),
        })
    }

    /// Runs `ctx`'s share of rollout `record` here, following its state in the store.
    pub(super) fn spawn(&self, ctx: Arc<RolloutCtx>, record: RolloutRecord) {
        // A child of the current span: the gRPC call that started it (and through it the
        // caller's trace), which it outlives.
        let span = tracing::info_span!(
            "rollout",
            avocet.rollout.id = %ctx.id,
            avocet.fleet = %ctx.fleet.name,
            avocet.direction = ctx.spec.op.direction().as_str(),
            avocet.tenant_count = record.tenant_count,
            avocet.dry_run = ctx.spec.dry_run,
            db.system.name = db_system_name(ctx.fleet.dialect),
            avocet.state = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        record_trace_id(&span);
        let (active, writer, ended) =
            (self.active.clone(), self.writer.clone(), self.ended.clone());
        active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ctx.id.clone(), ctx.clone());
        self.tracker.spawn(
            async move {
                let done = CancellationToken::new();
                let follower = {
                    let (ctx, done) = (ctx.clone(), done.clone());
                    tokio::spawn(async move { ctx.follow(done).await })
                };
                let clock = std::time::Instant::now();
                if let Err(cause) = unwound(job::run(ctx.clone(), record)).await {
                    // A bug, not a tenant's failure: the rollout ends failed with the cause,
                    // so every stream on it ends instead of waiting for events.
                    let reason = format!("internal error (a bug; please report it): {cause}");
                    tracing::error!("{reason}");
                    if let Err(stop) = ctx.finish(RolloutState::Failed, &reason, clock).await {
                        tracing::error!(?stop, "ending a rollout whose task panicked");
                    }
                }
                done.cancel();
                let _ = follower.await;
                writer.flush().await;
                active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&ctx.id);
                ended.notify_waiters();
                writer.forget(&ctx.id);
            }
            .instrument(span),
        );
    }

    /// The fleet and set rollout `record` runs on, here.
    ///
    /// # Errors
    /// [`RunnerError::Fleet`] when the fleet is gone or its set does not load;
    /// [`RunnerError::SetChanged`] when the set is not the one the rollout started with.
    pub(super) fn scope_of(
        &self,
        record: &RolloutRecord,
    ) -> Result<(Arc<Fleet>, Arc<MigrationSet>), RunnerError> {
        let fleet_error = |source| RunnerError::Fleet {
            id: record.id.clone(),
            source: Box::new(source),
        };
        let fleet = self
            .registry
            .fleet(&record.spec.fleet)
            .map_err(fleet_error)?
            .clone();
        // A rollout runs the set it pinned: a published one read here, or the fleet's own.
        let set = match fleet.published(&record.spec.set_digest.0) {
            Some(set) => set,
            None => fleet.load_set().map_err(fleet_error)?,
        };
        if *set.digest() != record.spec.set_digest {
            return Err(RunnerError::SetChanged {
                id: record.id.clone(),
                started: record.spec.set_digest.to_string(),
                now: set.digest().to_string(),
            });
        }
        Ok((fleet, set))
    }

    pub(super) async fn record(&self, id: &str) -> Result<RolloutRecord, RunnerError> {
        self.store
            .rollout(id)
            .await?
            .ok_or_else(|| RunnerError::NotFound(id.to_owned()))
    }

    /// True when another replica was seen within the lease timeout.
    pub(super) async fn others_alive(&self) -> Result<bool, StoreError> {
        let lease_ms = self.replica.lease.as_millis() as i64;
        self.store.others_alive(&self.replica.id, lease_ms).await
    }

    /// Applies `step` to rollout `id` with a `StateChanged` by `caller` saying `reason`;
    /// the state it is in now.
    ///
    /// # Errors
    /// [`RunnerError::State`] when the state table refuses the step from the stored
    /// state (another caller or replica changed it first); [`RunnerError::Store`].
    async fn change(
        &self,
        id: &str,
        step: RolloutStep,
        caller: &str,
        reason: &str,
        action: &'static str,
    ) -> Result<RolloutState, RunnerError> {
        let by = caller.to_owned();
        let reason = reason.to_owned();
        let changed = self
            .writer
            .change_state(id, step, move |state| EventKind::StateChanged {
                state,
                by,
                reason,
            })
            .await?;
        if self.ctx(id).is_none() {
            self.writer.forget(id);
        }
        match changed {
            Changed::To(state, _) => Ok(state),
            Changed::Refused(Refused { from, .. }) => Err(RunnerError::State {
                id: id.to_owned(),
                state: from.as_str(),
                action,
            }),
        }
    }

    /// Starts no further tenant of rollout `id`, on any replica, until it is resumed.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] unless it is running.
    pub(crate) async fn pause(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        self.record(id).await?;
        self.change(id, RolloutStep::Pause, caller, "paused", "paused")
            .await?;
        if let Some(ctx) = self.ctx(id) {
            ctx.set_paused(true);
        }
        self.store
            .audit(id, "avocet.v1.Rollouts/Pause", caller, "")
            .await?;
        Ok(())
    }

    /// Continues a paused rollout (on every replica that runs it, and here), or one a
    /// stopped daemon left interrupted, with its tenants not yet done.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] for a rollout that is running or
    /// finished; [`RunnerError::SetChanged`] when the fleet's set is not the one it started
    /// with; [`RunnerError::Fleet`] when the fleet is gone; [`RunnerError::NeedsRepair`]
    /// when tenants a stopped daemon cut off hold a `running` record (nothing changes).
    pub(crate) async fn resume(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        if let Some(ctx) = self.ctx(id) {
            self.change(id, RolloutStep::Resume, caller, "resumed", "resumed")
                .await?;
            ctx.set_paused(false);
            self.store
                .audit(id, "avocet.v1.Rollouts/Resume", caller, "")
                .await?;
            return Ok(());
        }
        if !matches!(
            record.state,
            RolloutState::Interrupted | RolloutState::Paused
        ) {
            return Err(refused(&record, "resumed"));
        }
        if self.is_shutting_down() {
            return Err(refused(&record, "resumed while the daemon stops"));
        }
        self.prepare_pinned(&record).await;
        let (fleet, set) = self.scope_of(&record)?;
        if record.state == RolloutState::Interrupted {
            self.refuse_unrepaired(&record, &fleet).await?;
            // Nobody runs it: a new run, with the tenants a stopped daemon left running
            // pending again (their history tables say what is left).
            self.change(id, RolloutStep::Reopen, caller, "reopened", "resumed")
                .await?;
        }
        self.change(id, RolloutStep::Resume, caller, "resumed", "resumed")
            .await?;
        self.store
            .audit(id, "avocet.v1.Rollouts/Resume", caller, "")
            .await?;
        let record = self.record(id).await?;
        let ctx = self.context(id, record.spec.clone(), fleet, set, &record.created_by);
        self.spawn(ctx, record);
        Ok(())
    }

    /// Refuses to resume `record` while a tenant that a stopped daemon was running (claimed,
    /// never finished) holds a `running` record: its migration's effect is unknown until `avocet repair`, and a
    /// run now would only fail it. Tenants that cannot be read now are left to the run.
    async fn refuse_unrepaired(
        &self,
        record: &RolloutRecord,
        fleet: &Fleet,
    ) -> Result<(), RunnerError> {
        let works = self.store.works(&record.id).await?;
        let mut tenants = Vec::new();
        // Items claimed and never finished: those a stopped daemon was running (its
        // restart may have released them to pending already).
        for work in works
            .iter()
            .filter(|w| !w.state.is_done() && w.attempts > 0)
        {
            let Ok(tenant) = fleet.tenant(&work.tenant) else {
                continue;
            };
            if let Ok(history) = tenant.read_history().await
                && history
                    .iter()
                    .any(|r| r.status == crate::model::RecordStatus::Running)
            {
                tenants.push(work.tenant.clone());
            }
        }
        if tenants.is_empty() {
            Ok(())
        } else {
            Err(RunnerError::NeedsRepair {
                id: record.id.clone(),
                tenants,
            })
        }
    }

    /// Starts no further tenant of rollout `id`; tenants in flight stop between
    /// migrations, on every replica; it ends `cancelled`.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] for a finished rollout (also one
    /// that finished while the cancel was on its way).
    pub(crate) async fn cancel(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        let run_elsewhere = matches!(record.state, RolloutState::Running | RolloutState::Paused)
            && self.others_alive().await?;
        self.change(id, RolloutStep::Cancel, caller, "cancelled", "cancelled")
            .await?;
        self.store
            .audit(id, "avocet.v1.Rollouts/Cancel", caller, "")
            .await?;
        let local = self.ctx(id);
        if let Some(ctx) = &local {
            ctx.cancelled.cancel();
        }
        if local.is_some() || run_elsewhere {
            // Whoever runs it ends it once its tenants in flight stop.
            return Ok(());
        }
        // Nobody runs it (interrupted, or paused by a stopped daemon): end it here.
        let record = self.record(id).await?;
        self.end_here(&record, RolloutStep::End(RolloutState::Cancelled))
            .await?;
        Ok(())
    }
}

fn refused(record: &RolloutRecord, action: &'static str) -> RunnerError {
    RunnerError::State {
        id: record.id.clone(),
        state: record.state.as_str(),
        action,
    }
}

/// The identity's name in a caller as the audit writes it (`deployer (peer 10.0.0.7:50122)`):
/// its first word (identity names are ids, without spaces).
pub(crate) fn identity_of(caller: &str) -> &str {
    caller.split(' ').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_panicking_task_becomes_its_message() {
        assert_eq!(super::unwound(async {}).await, Ok(()));
        let boom = super::unwound(async { panic!("index out of bounds: {}", 3) }).await;
        assert_eq!(boom, Err("index out of bounds: 3".to_owned()));
        let plain = super::unwound(async { std::panic::panic_any(7_u8) }).await;
        assert_eq!(plain, Err("a panic without a message".to_owned()));
    }
}
