//! The runner: starts rollouts, pauses, resumes and cancels them, marks the ones a stopped
//! daemon left as interrupted, and at shutdown lets tenants in flight finish their
//! migration within the grace period.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{RolloutCtx, event, job, replica::Replica, writer::Writer};
use crate::{
    fleet::{Fleet, Registry, Tenant},
    model::{
        EventKind, MigrationSet, RolloutRecord, RolloutSpec, RolloutStarted, RolloutState,
        RolloutSummary, TenantWork, WorkState,
    },
    plan,
    store::{NewRollout, Store, StoreError, Write},
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

/// Why a rollout could not be started or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RunnerError {
    /// No rollout has that id.
    #[error("rollout {0:?} not found")]
    NotFound(String),
    /// The rollout's state does not allow the action.
    #[error("rollout {id} is {state}: it cannot be {action}")]
    State {
        id: String,
        state: &'static str,
        action: &'static str,
    },
    /// The fleet's set changed since the rollout started; resuming would run other SQL.
    #[error(
        "rollout {id}: the migration set changed since it started (digest {started} then, \
         {now} now): start a new rollout"
    )]
    SetChanged {
        id: String,
        started: String,
        now: String,
    },
    /// The fleet is gone or its set does not load.
    #[error("rollout {id}: {message}")]
    Fleet { id: String, message: String },
    /// The control store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// How long the drain waits, after cancelling what still runs on the servers at the end of
/// the shutdown grace, for the tenants to see their statements fail and roll back.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Starts and steers rollouts; one per daemon.
pub(crate) struct Runner {
    registry: Arc<Registry>,
    pub(super) store: Arc<Store>,
    writer: Writer,
    metrics: Metrics,
    pub(super) replica: Arc<Replica>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Rollouts this daemon runs now.
    active: Active,
    /// Rollouts this daemon declined to join (another set, a fleet it lacks): said once.
    pub(super) declined: Mutex<HashSet<String>>,
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
            store,
            metrics: Metrics::new(meter),
            replica: Arc::new(replica),
            shutdown,
            tracker: TaskTracker::new(),
            active: Active::default(),
            declined: Mutex::default(),
        }
    }

    /// The control store.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// How far rollout `id`'s events are stored, while this daemon runs it.
    pub(crate) fn stored(&self, id: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.ctx(id).map(|_| self.writer.stored(id))
    }

    /// True once shutdown began; no rollout starts.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
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
        let ctx = self.context(&id, req.spec.clone(), req.fleet.clone(), req.set);
        ctx.emit(EventKind::RolloutStarted(RolloutStarted {
            fleet: req.fleet.name.clone(),
            direction: req.spec.op.direction(),
            tenant_count: works.len() as u32,
            concurrency: req.spec.strategy.concurrency,
            dry_run: req.spec.dry_run,
            strategy: req.spec.strategy,
            waves: waves.len() as u32,
        }))
        .await;
        self.writer
            .send(Write::State {
                rollout_id: id.clone(),
                state: RolloutState::Running,
            })
            .await;
        // Tenants are claimed from the store: the rollout must be running there first.
        self.writer.flush().await;
        let record = self
            .store
            .rollout(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                context: "a rollout just created",
                message: "not found".into(),
            })?;
        self.spawn(ctx, record);
        Ok(id)
    }

    pub(super) fn context(
        &self,
        id: &str,
        spec: RolloutSpec,
        fleet: Arc<Fleet>,
        set: Arc<MigrationSet>,
    ) -> Arc<RolloutCtx> {
        let ctx = Arc::new(RolloutCtx {
            id: id.to_owned(),
            spec,
            fleet,
            set,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            writer: self.writer.clone(),
            store: self.store.clone(),
            replica: self.replica.clone(),
            paused: tokio::sync::watch::Sender::new(false),
            steered: std::sync::atomic::AtomicU64::new(0),
            cancelled: CancellationToken::new(),
            ended_elsewhere: CancellationToken::new(),
            shutdown: self.shutdown.child_token(),
        });
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.insert(id.to_owned(), ctx.clone());
        ctx
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
        let (active, writer) = (self.active.clone(), self.writer.clone());
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
                    tracing::error!(%cause, "the rollout's task panicked");
                    ctx.emit(EventKind::StateChanged {
                        state: RolloutState::Failed,
                        by: "avocetd".into(),
                        reason: format!("internal error (a bug; please report it): {cause}"),
                    })
                    .await;
                    ctx.finish(RolloutState::Failed, clock).await;
                }
                done.cancel();
                let _ = follower.await;
                writer.flush().await;
                active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&ctx.id);
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
        let fleet_error = |message: String| RunnerError::Fleet {
            id: record.id.clone(),
            message,
        };
        let fleet = self
            .registry
            .fleet(&record.spec.fleet)
            .map_err(|e| fleet_error(e.to_string()))?
            .clone();
        let set = fleet.load_set().map_err(|e| fleet_error(e.to_string()))?;
        if *set.digest() != record.spec.set_digest {
            return Err(RunnerError::SetChanged {
                id: record.id.clone(),
                started: record.spec.set_digest.to_string(),
                now: set.digest().to_string(),
            });
        }
        Ok((fleet, set))
    }

    /// Stores `kind` as the next event of rollout `id` and waits until it is stored.
    async fn emit_for(&self, id: &str, kind: EventKind) {
        self.writer.send(Write::Event(event(id, kind))).await;
        self.writer.flush().await;
        if self.ctx(id).is_none() {
            self.writer.forget(id);
        }
    }

    async fn record(&self, id: &str) -> Result<RolloutRecord, RunnerError> {
        self.store
            .rollout(id)
            .await?
            .ok_or_else(|| RunnerError::NotFound(id.to_owned()))
    }

    /// True when another replica was seen within the lease timeout.
    async fn others_alive(&self) -> Result<bool, StoreError> {
        let since = crate::store::now_ms() - self.replica.lease.as_millis() as i64;
        self.store.others_alive(&self.replica.id, since).await
    }

    /// Starts no further tenant of rollout `id`, on any replica, until it is resumed.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] unless it is running.
    pub(crate) async fn pause(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        if record.state != RolloutState::Running {
            return Err(refused(&record, "paused"));
        }
        let local = self.ctx(id);
        if let Some(ctx) = &local {
            ctx.set_paused(true);
        }
        self.store
            .audit(id, "avocet.v1.Rollouts/Pause", caller, "")
            .await?;
        self.emit_for(id, state_changed(RolloutState::Paused, caller, "paused"))
            .await;
        if let Some(ctx) = &local {
            // Again, now the store says so: a state the follower read in between is stale.
            ctx.set_paused(true);
        }
        Ok(())
    }

    /// Continues a paused rollout (on every replica that runs it, and here), or one a
    /// stopped daemon left interrupted, with its tenants not yet done.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] for a rollout that is running or
    /// finished; [`RunnerError::SetChanged`] when the fleet's set is not the one it started
    /// with; [`RunnerError::Fleet`] when the fleet is gone.
    pub(crate) async fn resume(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        if !matches!(
            record.state,
            RolloutState::Interrupted | RolloutState::Paused
        ) {
            return Err(refused(&record, "resumed"));
        }
        if let Some(ctx) = self.ctx(id) {
            ctx.set_paused(false);
            self.store
                .audit(id, "avocet.v1.Rollouts/Resume", caller, "")
                .await?;
            self.emit_for(id, state_changed(RolloutState::Running, caller, "resumed"))
                .await;
            ctx.set_paused(false);
            return Ok(());
        }
        if self.is_shutting_down() {
            return Err(refused(&record, "resumed while the daemon stops"));
        }
        let (fleet, set) = self.scope_of(&record)?;
        if record.state == RolloutState::Interrupted {
            // Nobody runs it: a new run, with the tenants a stopped daemon left running
            // pending again (their history tables say what is left).
            if !self.store.reopen(id).await? {
                return Err(refused(&record, "resumed twice at once"));
            }
        }
        self.store
            .audit(id, "avocet.v1.Rollouts/Resume", caller, "")
            .await?;
        let ctx = self.context(id, record.spec.clone(), fleet, set);
        self.emit_for(id, state_changed(RolloutState::Running, caller, "resumed"))
            .await;
        self.spawn(ctx, record);
        Ok(())
    }

    /// Starts no further tenant of rollout `id`; tenants in flight stop between
    /// migrations, on every replica; it ends `cancelled`.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] for a finished rollout.
    pub(crate) async fn cancel(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        if record.state.is_final() {
            return Err(refused(&record, "cancelled"));
        }
        self.store
            .audit(id, "avocet.v1.Rollouts/Cancel", caller, "")
            .await?;
        let local = self.ctx(id);
        let run_elsewhere = matches!(record.state, RolloutState::Running | RolloutState::Paused)
            && self.others_alive().await?;
        if let Some(ctx) = &local {
            ctx.cancelled.cancel();
        }
        self.emit_for(
            id,
            state_changed(RolloutState::Cancelled, caller, "cancelled"),
        )
        .await;
        if local.is_some() || run_elsewhere {
            // Whoever runs it ends it once its tenants in flight stop.
            return Ok(());
        }
        // Nobody runs it (interrupted, or paused by a stopped daemon): end it here.
        let summary = RolloutSummary {
            succeeded: record.succeeded,
            failed: record.failed,
            skipped: record.skipped,
            migrations_run: record.migrations_run,
            duration_ms: 0,
            state: RolloutState::Cancelled,
        };
        self.emit_for(id, EventKind::RolloutFinished(summary)).await;
        Ok(())
    }

    /// At start: says this replica is alive and takes back what it held in an earlier
    /// life. Then, unless another replica is alive (it goes on with them), rollouts a
    /// stopped daemon left pending or running are marked interrupted, with a
    /// `RolloutFinished` saying so. Returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read or written.
    pub(crate) async fn recover(&self) -> Result<usize, StoreError> {
        self.heartbeat().await;
        let released = self.store.release_leases(&self.replica.id).await?;
        if self.others_alive().await? {
            if released > 0 {
                tracing::info!(
                    released,
                    "tenants this replica held before it stopped are claimable again"
                );
            }
            return Ok(0);
        }
        let unfinished = self.store.unfinished().await?;
        for record in &unfinished {
            tracing::warn!(rollout_id = %record.id, "rollout interrupted by a daemon stop; resume it");
            let summary = RolloutSummary {
                succeeded: record.succeeded,
                failed: record.failed,
                skipped: record.skipped,
                migrations_run: record.migrations_run,
                duration_ms: 0,
                state: RolloutState::Interrupted,
            };
            self.emit_for(&record.id, EventKind::RolloutFinished(summary))
                .await;
        }
        Ok(unfinished.len())
    }

    /// After the shutdown token is cancelled: waits up to `grace` for the rollouts' tenants
    /// in flight to finish their migration. Then cancels what still runs on the servers
    /// (`pg_cancel_backend`, `KILL QUERY`: a transactional migration rolls back and its
    /// tenant runs it again on resume) and waits up to [`CANCEL_WAIT`] for the tenants to
    /// end, so what the store and the log say is what happened. Rollouts still running
    /// after that are marked interrupted (unless other replicas go on with them), with the
    /// counts the store has, and their tasks dropped (which closes their sessions).
    pub(crate) async fn drain(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            let (sent, unsent) = self.registry.cancel_in_flight().await;
            if sent + unsent > 0 {
                tracing::warn!(
                    cancelled = sent,
                    not_cancelled = unsent,
                    "shutdown grace over: migrations still running cancelled on their servers; \
                     waiting for them to end"
                );
            }
            if tokio::time::timeout(CANCEL_WAIT, self.tracker.wait())
                .await
                .is_ok()
            {
                return;
            }
            let left: Vec<Arc<RolloutCtx>> = self
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            for ctx in left {
                let others = self.store.others_leasing(&ctx.id, &self.replica.id).await;
                if others.unwrap_or(false) {
                    continue;
                }
                tracing::warn!(rollout_id = %ctx.id, "shutdown grace over; rollout left interrupted");
                self.writer.flush().await;
                let record = self.store.rollout(&ctx.id).await.ok().flatten();
                let summary = RolloutSummary {
                    state: RolloutState::Interrupted,
                    succeeded: record.as_ref().map_or(0, |r| r.succeeded),
                    failed: record.as_ref().map_or(0, |r| r.failed),
                    skipped: record.as_ref().map_or(0, |r| r.skipped),
                    migrations_run: record.as_ref().map_or(0, |r| r.migrations_run),
                    duration_ms: 0,
                };
                self.emit_for(&ctx.id, EventKind::RolloutFinished(summary))
                    .await;
            }
        }
    }
}

fn state_changed(state: RolloutState, by: &str, reason: &str) -> EventKind {
    EventKind::StateChanged {
        state,
        by: by.to_owned(),
        reason: reason.to_owned(),
    }
}

fn refused(record: &RolloutRecord, action: &'static str) -> RunnerError {
    RunnerError::State {
        id: record.id.clone(),
        state: record.state.as_str(),
        action,
    }
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
