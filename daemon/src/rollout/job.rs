//! One rollout's run on this replica: its waves in order; in each, tenants claimed from the
//! control store a few at a time and started under the strategy's concurrency (and per host), so replicas
//! sharing the store share the work; a wave ends when no tenant of it is waiting or running
//! on any replica. The run stops at a failed canary or past `max_failures`, pauses when
//! asked, and one replica (the first to finish) ends the rollout with a final state that
//! says whether it can be resumed.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinSet};
use tracing::Instrument;

use super::RolloutCtx;
use crate::migrate::TenantReport;
use crate::{
    fleet::Tenant,
    model::{EventKind, RolloutRecord, RolloutState, RolloutSummary, TenantOutcome, WorkState},
    plan,
    store::{Claim, StoreError, WaveCounts, now_ms},
    telemetry::fail,
};

/// How often a replica waiting on other replicas' tenants looks at its wave again.
const WAVE_POLL: Duration = Duration::from_millis(250);

/// Longest wait for a fresh read of the registered tenants when a claimed tenant is not in
/// the fleet (registered through another replica a moment ago).
const REGISTRY_WAIT: Duration = Duration::from_secs(5);

/// Tenants claimed per request to the store: one commit for several tenants (on the
/// embedded SQLite store each commit is a WAL fsync). A replica holds at most this many
/// claimed tenants it has not started; a stop gives them back.
const CLAIM_BATCH: u32 = 8;

/// Why a run stops starting tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A canary tenant failed.
    Canary,
    /// More tenants failed than `max_failures` allows.
    Failures,
    /// A caller cancelled the rollout.
    Cancelled,
    /// The daemon is shutting down.
    Shutdown,
    /// Another replica left the rollout interrupted.
    Elsewhere,
}

/// Runs this replica's share of the rollout's remaining work; the replica that ends it
/// emits the skipped tenants and `RolloutFinished`.
pub(super) async fn run(ctx: Arc<RolloutCtx>, record: RolloutRecord) {
    let clock = Instant::now();
    let strategy = ctx.spec.strategy;
    let waves = plan::waves(record.tenant_count as usize, &strategy);
    let tenants: HashMap<String, Arc<Tenant>> = ctx
        .fleet
        .tenants()
        .iter()
        .map(|t| (t.id.clone(), t.clone()))
        .collect();
    let mut run = Run {
        ctx: ctx.clone(),
        tenants,
        failures: Arc::new(AtomicU32::new(record.failed)),
        limit: strategy
            .max_failures
            .map(|a| a.of(record.tenant_count as usize) as u32),
        permits: Arc::new(Semaphore::new(strategy.concurrency.max(1) as usize)),
        hosts: HashMap::new(),
    };
    let mut stop = None;
    let mut started_a_wave = false;
    for wave in &waves {
        let wave_span = tracing::info_span!(
            "wave",
            avocet.wave = wave.index,
            avocet.canary = wave.canary,
        );
        let mut first = true;
        loop {
            let Some(counts) = run.wave_counts(wave.index).await else {
                stop = Some(Stop::Shutdown);
                break;
            };
            run.failures
                .fetch_max(counts.rollout_failed, Ordering::SeqCst);
            if counts.done() {
                if wave.canary && counts.failed > 0 {
                    stop = Some(Stop::Canary);
                }
                break;
            }
            if first {
                first = false;
                // A replica that joins between waves pauses too, unless another replica
                // already started this wave (its pause is over).
                let joined_between = !started_a_wave
                    && wave.index > 0
                    && !ctx
                        .store
                        .wave_marked(&ctx.id, wave.index)
                        .await
                        .unwrap_or(true);
                if (started_a_wave || joined_between) && strategy.pause_between_waves_ms > 0 {
                    let pause = Duration::from_millis(strategy.pause_between_waves_ms);
                    if let Some(s) = ctx.sleep_unless_stopped(pause).await {
                        stop = Some(s);
                        break;
                    }
                }
                started_a_wave = true;
                if ctx
                    .store
                    .mark_wave(&ctx.id, wave.index)
                    .await
                    .unwrap_or(false)
                {
                    ctx.emit(EventKind::WaveStarted {
                        index: wave.index,
                        canary: wave.canary,
                        tenant_count: counts.pending + counts.running + counts.expired,
                    })
                    .await;
                }
            }
            let (claimed, s) = run
                .claim_and_run(wave.index)
                .instrument(wave_span.clone())
                .await;
            stop = s;
            if stop.is_none() && run.over_limit() {
                stop = Some(Stop::Failures);
            }
            if stop.is_some() {
                break;
            }
            if claimed == 0 {
                // Other replicas run this wave's last tenants, or the rollout is paused.
                if let Some(s) = ctx.sleep_unless_stopped(WAVE_POLL).await {
                    stop = Some(s);
                    break;
                }
            }
        }
        if stop.is_none() && run.over_limit() {
            stop = Some(Stop::Failures);
        }
        if stop.is_none() {
            stop = ctx.stopped();
        }
        if stop.is_some() {
            break;
        }
    }
    run.end(stop, clock).await;
}

/// A run's shared counters and limits.
struct Run {
    ctx: Arc<RolloutCtx>,
    /// The fleet's tenants when the run began, by id.
    tenants: HashMap<String, Arc<Tenant>>,
    /// Tenants failed in this rollout, as far as this replica knows.
    failures: Arc<AtomicU32>,
    limit: Option<u32>,
    permits: Arc<Semaphore>,
    hosts: HashMap<String, Arc<Semaphore>>,
}

impl Run {
    /// Tenant `id` of the fleet: as the run began, or registered since (through any
    /// replica: the registry is asked for a fresh read of the control store first, and
    /// only read); `None` when the fleet has it nowhere.
    async fn tenant(&mut self, id: &str) -> Option<Arc<Tenant>> {
        if let Some(t) = self.tenants.get(id) {
            return Some(t.clone());
        }
        let ctx = &self.ctx;
        if ctx.fleet.tenant(id).is_err() && !ctx.registry.fresh(REGISTRY_WAIT).await {
            tracing::warn!(
                tenant = id,
                "the registered tenants could not be read in time"
            );
        }
        let tenant = ctx.fleet.tenant(id).ok()?;
        self.tenants.insert(id.to_owned(), tenant.clone());
        Some(tenant)
    }

    fn over_limit(&self) -> bool {
        self.limit
            .is_some_and(|l| self.failures.load(Ordering::SeqCst) > l)
    }

    /// Wave `wave`'s counts, once this replica's writes are stored; retried while the
    /// store does not answer. `None` when the daemon stops first.
    async fn wave_counts(&self, wave: u32) -> Option<WaveCounts> {
        self.ctx.writer.flush().await;
        let ctx = &self.ctx;
        ctx.retry("counting a wave", || ctx.store.wave_counts(&ctx.id, wave))
            .await
    }

    /// Claims and runs tenants of wave `wave` while it has claimable ones and nothing
    /// stops the run; waits for those it started. Returns how many it claimed.
    async fn claim_and_run(&mut self, wave: u32) -> (u32, Option<Stop>) {
        let ctx = self.ctx.clone();
        let strategy = ctx.spec.strategy;
        let mut running = JoinSet::new();
        let mut positions = HashMap::new();
        let mut claimed = 0;
        let mut stop = None;
        let mut queue = std::collections::VecDeque::new();
        loop {
            if let Some(s) = ctx.wait_while_paused().await {
                stop = Some(s);
                break;
            }
            if self.over_limit() {
                break;
            }
            // The semaphores are never closed, so acquiring cannot fail.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            // Waiting for a permit may have taken a while: look again before claiming.
            if let Some(s) = ctx.wait_while_paused().await {
                stop = Some(s);
                break;
            }
            if self.over_limit() {
                break;
            }
            if queue.is_empty() {
                queue.extend(self.claim(wave).await);
            }
            let Some(claim) = queue.pop_front() else {
                break;
            };
            claimed += 1;
            let Some(tenant) = self.tenant(&claim.tenant).await else {
                let report = TenantReport::unconfigured(&claim.tenant);
                let finished = ctx
                    .finish_tenant(&claim.tenant, report, Duration::ZERO)
                    .await;
                ctx.finish_work(claim.position, &finished, None).await;
                self.failures.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            let host_permit = match (strategy.per_host_concurrency, tenant.host()) {
                (Some(n), Some(host)) => {
                    let sem = self
                        .hosts
                        .entry(host)
                        .or_insert_with(|| Arc::new(Semaphore::new(n.max(1) as usize)))
                        .clone();
                    sem.acquire_owned().await.ok()
                }
                _ => None,
            };
            // Waiting for the host's permit may have taken a while: look again.
            if let Some(s) = ctx.stopped() {
                queue.push_front(claim);
                stop = Some(s);
                break;
            }
            let (ctx, failures, position) = (ctx.clone(), self.failures.clone(), claim.position);
            let handle = running.spawn(
                async move {
                    let (finished, known) = ctx.run_tenant(&tenant).await;
                    if finished.outcome == TenantOutcome::Failed {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    ctx.finish_work(position, &finished, known).await;
                    drop((permit, host_permit));
                }
                .in_current_span(),
            );
            positions.insert(handle.id(), claim);
        }
        if !queue.is_empty() {
            let unstarted: Vec<u32> = queue.iter().map(|c: &Claim| c.position).collect();
            let owner = &ctx.replica.id;
            if let Err(e) = ctx.store.release_claims(&ctx.id, owner, &unstarted).await {
                // Their leases run out instead, and another replica (or a resume) takes them.
                tracing::warn!("giving back {} claimed tenants: {e}", unstarted.len());
            }
        }
        while let Some(done) = running.join_next_with_id().await {
            if let Err(e) = done {
                // A bug, not a database error: report it as the tenant's failure.
                let claim = &positions[&e.id()];
                let report = TenantReport::panicked(&claim.tenant, &e.to_string());
                let finished = ctx
                    .finish_tenant(&claim.tenant, report, Duration::ZERO)
                    .await;
                ctx.finish_work(claim.position, &finished, None).await;
                self.failures.fetch_add(1, Ordering::SeqCst);
            }
        }
        (claimed, stop.or_else(|| ctx.stopped()))
    }

    /// The next claimable tenants of wave `wave` (up to [`CLAIM_BATCH`]), leased to this
    /// replica; empty when there is none now (or the store does not answer and the daemon
    /// stops).
    async fn claim(&self, wave: u32) -> Vec<Claim> {
        let ctx = &self.ctx;
        let lease_until = now_ms() + ctx.replica.lease.as_millis() as i64;
        ctx.retry("claiming tenants", || {
            ctx.store.claim(
                &ctx.id,
                wave,
                &ctx.replica.id,
                lease_until,
                CLAIM_BATCH,
                self.limit,
            )
        })
        .await
        .unwrap_or_default()
    }

    /// Ends this replica's run. Stopped by a shutdown: the tenants it cut off are pending
    /// again; the rollout is left interrupted unless other replicas go on with it.
    /// Otherwise, once no tenant runs anywhere, the first replica here ends it: tenants
    /// never started are skipped, and `RolloutFinished` carries the store's totals.
    async fn end(self, stop: Option<Stop>, clock: Instant) {
        let ctx = self.ctx;
        ctx.writer.flush().await;
        if stop == Some(Stop::Elsewhere) {
            return;
        }
        if stop == Some(Stop::Shutdown) {
            if ctx.others_leasing().await {
                tracing::info!("daemon stopping; other replicas go on with the rollout");
                return;
            }
            ctx.finish(RolloutState::Interrupted, clock).await;
            return;
        }
        // Ending it first: from now on no replica claims a tenant of it.
        let since = now_ms() - ctx.replica.lease.as_millis() as i64;
        match ctx
            .store
            .claim_finish(&ctx.id, &ctx.replica.id, since)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!("rollout not ended here: {e}");
                return;
            }
        }
        if stop.is_some() {
            // Tenants that other replicas run end first: nothing is skipped under them.
            ctx.wait_none_running().await;
            ctx.writer.flush().await;
            if ctx.shutdown.is_cancelled() {
                // Stopping before they ended: leave the ending to a replica that stays, or
                // leave the rollout interrupted when none runs it.
                if let Err(e) = ctx.store.unclaim_finish(&ctx.id, &ctx.replica.id).await {
                    tracing::warn!("giving back the end of the rollout: {e}");
                }
                if !ctx.others_leasing().await {
                    ctx.finish(RolloutState::Interrupted, clock).await;
                }
                return;
            }
        }
        let works = ctx.store.works(&ctx.id).await.unwrap_or_default();
        let cancelled = stop == Some(Stop::Cancelled)
            || matches!(
                ctx.store.rollout_state(&ctx.id).await,
                Ok(Some(RolloutState::Cancelled))
            );
        let state = if cancelled {
            RolloutState::Cancelled
        } else if works.iter().any(|w| w.state == WorkState::Failed) {
            RolloutState::Failed
        } else if stop.is_none() && works.iter().any(|w| !w.state.is_done()) {
            // Tenants cut off by a shutdown that came as the last wave ended.
            RolloutState::Interrupted
        } else {
            RolloutState::Succeeded
        };
        if state != RolloutState::Interrupted {
            for work in works.iter().filter(|w| !w.state.is_done()) {
                let finished = ctx
                    .finish_tenant(&work.tenant, TenantReport::skipped(), Duration::ZERO)
                    .await;
                ctx.finish_work(work.position, &finished, None).await;
            }
        }
        ctx.finish(state, clock).await;
    }
}

impl RolloutCtx {
    /// Emits `RolloutFinished` in `state` with the store's totals.
    pub(super) async fn finish(&self, state: RolloutState, clock: Instant) {
        self.writer.flush().await;
        let record = self.store.rollout(&self.id).await.ok().flatten();
        let summary = RolloutSummary {
            succeeded: record.as_ref().map_or(0, |r| r.succeeded),
            failed: record.as_ref().map_or(0, |r| r.failed),
            skipped: record.as_ref().map_or(0, |r| r.skipped),
            migrations_run: record.as_ref().map_or(0, |r| r.migrations_run),
            duration_ms: clock.elapsed().as_millis() as u64,
            state,
        };
        // Called in the rollout's span.
        let span = tracing::Span::current();
        span.record("avocet.state", state.as_str());
        if state == RolloutState::Failed {
            let message = format!(
                "{} of {} tenants failed",
                summary.failed,
                record.as_ref().map_or(0, |r| r.tenant_count)
            );
            fail(&span, "rollout_failed", &message);
        }
        tracing::info!(
            state = state.as_str(),
            succeeded = summary.succeeded,
            failed = summary.failed,
            skipped = summary.skipped,
            "rollout finished"
        );
        self.emit(EventKind::RolloutFinished(summary)).await;
    }

    /// True when another replica runs a tenant of this rollout now. A store that does
    /// not answer counts as yes: the rollout stays running, and its leases run out.
    async fn others_leasing(&self) -> bool {
        self.store
            .others_leasing(&self.id, &self.replica.id)
            .await
            .unwrap_or(true)
    }

    /// Waits until no tenant of the rollout runs on any replica (leases that ran out do
    /// not count).
    async fn wait_none_running(&self) {
        loop {
            let running = match self.store.running_count(&self.id).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("reading a rollout's running tenants: {e}");
                    0
                }
            };
            if running == 0 || self.shutdown.is_cancelled() {
                return;
            }
            tokio::time::sleep(WAVE_POLL).await;
        }
    }

    /// `op` until the store answers, backing off; `None` when the daemon stops first.
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            match op().await {
                Ok(v) => return Some(v),
                Err(e) => {
                    tracing::warn!("{what}: {e}; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.shutdown.cancelled() => return None,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Why the run must stop starting tenants, if it must.
    fn stopped(&self) -> Option<Stop> {
        if self.shutdown.is_cancelled() {
            Some(Stop::Shutdown)
        } else if self.ended_elsewhere.is_cancelled() {
            Some(Stop::Elsewhere)
        } else if self.cancelled.is_cancelled() {
            Some(Stop::Cancelled)
        } else {
            None
        }
    }

    /// Waits while the rollout is paused; `Some` when it must stop instead.
    async fn wait_while_paused(&self) -> Option<Stop> {
        let mut paused = self.paused.subscribe();
        loop {
            if let Some(stop) = self.stopped() {
                return Some(stop);
            }
            if !*paused.borrow_and_update() {
                return None;
            }
            tokio::select! {
                _ = paused.changed() => {}
                () = self.shutdown.cancelled() => {}
                () = self.cancelled.cancelled() => {}
                () = self.ended_elsewhere.cancelled() => {}
            }
        }
    }

    /// Sleeps `d` unless the rollout stops first.
    async fn sleep_unless_stopped(&self, d: Duration) -> Option<Stop> {
        tokio::select! {
            () = tokio::time::sleep(d) => self.wait_while_paused().await,
            () = self.shutdown.cancelled() => Some(Stop::Shutdown),
            () = self.cancelled.cancelled() => Some(Stop::Cancelled),
            () = self.ended_elsewhere.cancelled() => Some(Stop::Elsewhere),
        }
    }
}
