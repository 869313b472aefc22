//! The runner: starts rollouts, pauses, resumes and cancels them, marks the ones a stopped
//! daemon left as interrupted, and at shutdown lets tenants in flight finish their
//! migration within the grace period.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{
    RolloutCtx,
    job::{self, Item},
    writer::Writer,
};
use crate::{
    fleet::{Fleet, Registry, Tenant},
    model::{
        EventKind, MigrationSet, RolloutEvent, RolloutRecord, RolloutSpec, RolloutStarted,
        RolloutState, RolloutSummary, TenantWork, WorkState,
    },
    plan,
    store::{NewRollout, Store, StoreError, Write},
    telemetry::Metrics,
};

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

/// Starts and steers rollouts; one per daemon.
pub(crate) struct Runner {
    registry: Arc<Registry>,
    store: Arc<Store>,
    writer: Writer,
    metrics: Metrics,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Rollouts this daemon runs now.
    active: Active,
}

/// Rollouts this daemon runs now, by id.
type Active = Arc<Mutex<HashMap<String, Arc<RolloutCtx>>>>;

impl Runner {
    /// A runner over `registry` and `store`; cancelling `shutdown` stops every rollout
    /// starting tenants and leaves it interrupted.
    pub(crate) fn new(
        registry: Arc<Registry>,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            writer: Writer::start(store.clone()),
            registry,
            store,
            metrics: Metrics::default(),
            shutdown,
            tracker: TaskTracker::new(),
            active: Active::default(),
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

    fn ctx(&self, id: &str) -> Option<Arc<RolloutCtx>> {
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
        let ctx = self.context(&id, req.spec.clone(), req.fleet.clone(), req.set, 0);
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
        let record = self
            .store
            .rollout(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                context: "a rollout just created",
                message: "not found".into(),
            })?;
        let items = works
            .into_iter()
            .zip(req.tenants)
            .map(|(work, tenant)| Item {
                work,
                tenant: Some(tenant),
            })
            .collect();
        self.spawn(ctx, record, items, waves);
        Ok(id)
    }

    fn context(
        &self,
        id: &str,
        spec: RolloutSpec,
        fleet: Arc<Fleet>,
        set: Arc<MigrationSet>,
        last_seq: u64,
    ) -> Arc<RolloutCtx> {
        let ctx = Arc::new(RolloutCtx {
            id: id.to_owned(),
            spec,
            fleet,
            set,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            writer: self.writer.clone(),
            seq: tokio::sync::Mutex::new(last_seq),
            paused: tokio::sync::watch::Sender::new(false),
            cancelled: CancellationToken::new(),
            shutdown: self.shutdown.child_token(),
        });
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.insert(id.to_owned(), ctx.clone());
        ctx
    }

    fn spawn(
        &self,
        ctx: Arc<RolloutCtx>,
        record: RolloutRecord,
        items: Vec<Item>,
        waves: Vec<plan::WaveSpan>,
    ) {
        let span = tracing::info_span!(
            "rollout",
            rollout_id = %ctx.id,
            fleet = %ctx.fleet.name,
            direction = ctx.spec.op.direction().as_str(),
            tenants = items.len(),
        );
        let writer = self.writer.clone();
        let done = {
            let ctx = ctx.clone();
            async move {
                job::run(ctx.clone(), record, items, waves).await;
                writer.wait_stored(&ctx.id, ctx.last_seq().await).await;
            }
        };
        let (active, writer) = (self.active.clone(), self.writer.clone());
        self.tracker.spawn(
            async move {
                done.await;
                active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&ctx.id);
                writer.forget(&ctx.id);
            }
            .instrument(span),
        );
    }

    /// Stores `kind` as the next event of rollout `record`, which no task runs.
    async fn emit_for(&self, record: &RolloutRecord, kind: EventKind) {
        self.writer
            .send(Write::Event(RolloutEvent {
                rollout_id: record.id.clone(),
                seq: record.last_seq + 1,
                at_unix_ms: crate::store::now_ms(),
                kind,
            }))
            .await;
        self.writer
            .wait_stored(&record.id, record.last_seq + 1)
            .await;
        self.writer.forget(&record.id);
    }

    async fn record(&self, id: &str) -> Result<RolloutRecord, RunnerError> {
        self.store
            .rollout(id)
            .await?
            .ok_or_else(|| RunnerError::NotFound(id.to_owned()))
    }

    /// Starts no further tenant of rollout `id` until it is resumed.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] unless it is running here.
    pub(crate) async fn pause(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        let ctx = self
            .ctx(id)
            .filter(|_| record.state == RolloutState::Running);
        let Some(ctx) = ctx else {
            return Err(refused(&record, "paused"));
        };
        ctx.paused.send_replace(true);
        self.store
            .audit(id, "avocet.v1.Rollouts/Pause", caller, "")
            .await?;
        let seq = ctx
            .emit(state_changed(RolloutState::Paused, caller, "paused"))
            .await;
        self.writer.wait_stored(id, seq).await;
        Ok(())
    }

    /// Continues a paused rollout, or one a stopped daemon left interrupted (or paused),
    /// with its tenants not yet done.
    ///
    /// # Errors
    /// [`RunnerError::NotFound`]; [`RunnerError::State`] for a rollout that is running or
    /// finished; [`RunnerError::SetChanged`] when the fleet's set is not the one it started
    /// with; [`RunnerError::Fleet`] when the fleet is gone.
    pub(crate) async fn resume(&self, id: &str, caller: &str) -> Result<(), RunnerError> {
        let record = self.record(id).await?;
        if let Some(ctx) = self.ctx(id) {
            if record.state != RolloutState::Paused {
                return Err(refused(&record, "resumed"));
            }
            ctx.paused.send_replace(false);
            self.store
                .audit(id, "avocet.v1.Rollouts/Resume", caller, "")
                .await?;
            let seq = ctx
                .emit(state_changed(RolloutState::Running, caller, "resumed"))
                .await;
            self.writer.wait_stored(id, seq).await;
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
        let fleet_error = |message: String| RunnerError::Fleet {
            id: id.to_owned(),
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
                id: id.to_owned(),
                started: record.spec.set_digest.to_string(),
                now: set.digest().to_string(),
            });
        }
        let works = self.store.works(id).await?;
        let tenants = fleet.tenants();
        let by_id: HashMap<&str, &Arc<Tenant>> =
            tenants.iter().map(|t| (t.id.as_str(), t)).collect();
        let items: Vec<Item> = works
            .into_iter()
            .map(|work| Item {
                tenant: by_id.get(work.tenant.as_str()).map(|t| (*t).clone()),
                work,
            })
            .collect();
        let waves = plan::waves(items.len(), &record.spec.strategy);
        self.store
            .audit(id, "avocet.v1.Rollouts/Resume", caller, "")
            .await?;
        let ctx = self.context(id, record.spec.clone(), fleet, set, record.last_seq);
        let seq = ctx
            .emit(state_changed(RolloutState::Running, caller, "resumed"))
            .await;
        self.writer.wait_stored(id, seq).await;
        self.spawn(ctx, record, items, waves);
        Ok(())
    }

    /// Starts no further tenant of rollout `id`; tenants in flight stop between
    /// migrations; it ends `cancelled`.
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
        if let Some(ctx) = self.ctx(id) {
            ctx.cancelled.cancel();
            let seq = ctx
                .emit(state_changed(RolloutState::Cancelled, caller, "cancelled"))
                .await;
            self.writer.wait_stored(id, seq).await;
            return Ok(());
        }
        // Nobody runs it (interrupted or paused by a stopped daemon): end it here.
        let summary = RolloutSummary {
            succeeded: record.succeeded,
            failed: record.failed,
            skipped: record.skipped,
            migrations_run: record.migrations_run,
            duration_ms: 0,
            state: RolloutState::Cancelled,
        };
        self.emit_for(&record, EventKind::RolloutFinished(summary))
            .await;
        Ok(())
    }

    /// At start: rollouts a stopped daemon left pending or running are marked
    /// interrupted, with a `RolloutFinished` saying so. Returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read or written.
    pub(crate) async fn recover(&self) -> Result<usize, StoreError> {
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
            self.emit_for(record, EventKind::RolloutFinished(summary))
                .await;
        }
        Ok(unfinished.len())
    }

    /// After the shutdown token is cancelled: waits up to `grace` for the rollouts' tenants
    /// in flight to finish their migration; rollouts still running then are marked
    /// interrupted and their tasks dropped (which closes their sessions).
    pub(crate) async fn drain(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
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
            tracing::warn!(rollout_id = %ctx.id, "shutdown grace over; rollout left interrupted");
            let summary = RolloutSummary {
                state: RolloutState::Interrupted,
                ..RolloutSummary::default()
            };
            let seq = ctx.emit(EventKind::RolloutFinished(summary)).await;
            self.writer.wait_stored(&ctx.id, seq).await;
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
