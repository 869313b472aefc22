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

use super::{
    RolloutCtx,
    verdict::{STORE_PATIENCE, Stop, final_state},
};
use crate::migrate::TenantReport;
use crate::{
    fleet::Tenant,
    model::{EventKind, RolloutRecord, RolloutState, TenantOutcome},
    plan,
    store::{Claim, WaveCounts},
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
            let counts = match run.wave_counts(wave.index).await {
                Ok(counts) => counts,
                Err(s) => {
                    stop = Some(s);
                    break;
                }
            };
            run.failures
                .fetch_max(counts.rollout_failed, Ordering::SeqCst);
            if counts.done() {
                if wave.canary && counts.failed > 0 {
                    stop = Some(Stop::Canary);
                } else if wave.canary
                    && started_a_wave
                    && !ctx.spec.dry_run
                    && waves.len() > 1
                    && matches!(ctx.spec.op, crate::model::RolloutOp::Apply(_))
                {
                    match ctx.canary_idle().await {
                        Ok(Some(why)) => stop = Some(Stop::CanaryIdle(why)),
                        Ok(None) => {}
                        Err(s) => stop = Some(s),
                    }
                }
                break;
            }
            if first {
                first = false;
                // A replica that joins between waves pauses too, unless another replica
                // already started this wave (its pause is over).
                let joined_between = !started_a_wave
                    && wave.index > 0
                    && match ctx
                        .retry("reading a wave mark", || {
                            ctx.store.wave_marked(&ctx.id, wave.index)
                        })
                        .await
                    {
                        Ok(marked) => !marked,
                        Err(s) => {
                            stop = Some(s);
                            break;
                        }
                    };
                if (started_a_wave || joined_between) && strategy.pause_between_waves_ms > 0 {
                    let pause = Duration::from_millis(strategy.pause_between_waves_ms);
                    if let Some(s) = ctx.sleep_unless_stopped(pause).await {
                        stop = Some(s);
                        break;
                    }
                }
                started_a_wave = true;
                let marked = ctx
                    .retry("marking a wave started", || {
                        ctx.store.mark_wave(&ctx.id, wave.index)
                    })
                    .await;
                let marked = match marked {
                    Ok(m) => m,
                    Err(s) => {
                        stop = Some(s);
                        break;
                    }
                };
                if marked {
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
    if let Err(cause) = run.end(stop, clock).await {
        // The store stayed away: the rollout stays as the store has it, its leases run
        // out, and a replica joining it (or the next start's recovery) ends it.
        tracing::error!(?cause, "the rollout could not be ended here");
    }
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
    ///
    /// # Errors
    /// The [`Stop`] of a shutdown, or of a registry that could not be read for
    /// [`STORE_PATIENCE`] (a read that failed never makes a tenant "not configured").
    async fn tenant(&mut self, id: &str) -> Result<Option<Arc<Tenant>>, Stop> {
        if let Some(t) = self.tenants.get(id) {
            return Ok(Some(t.clone()));
        }
        let ctx = &self.ctx;
        if ctx.fleet.tenant(id).is_err() {
            let started = Instant::now();
            while !ctx.registry.fresh(REGISTRY_WAIT).await {
                if ctx.shutdown.is_cancelled() {
                    return Err(Stop::Shutdown);
                }
                if started.elapsed() >= STORE_PATIENCE {
                    return Err(Stop::Store(
                        format!("reading the registered tenants (for {id})").into(),
                    ));
                }
                tracing::warn!(
                    tenant = id,
                    "the registered tenants could not be read in time; retrying"
                );
            }
        }
        let Ok(tenant) = ctx.fleet.tenant(id) else {
            return Ok(None);
        };
        self.tenants.insert(id.to_owned(), tenant.clone());
        Ok(Some(tenant))
    }

    fn over_limit(&self) -> bool {
        self.limit
            .is_some_and(|l| self.failures.load(Ordering::SeqCst) > l)
    }

    /// Wave `wave`'s counts, once this replica's writes are stored; retried while the
    /// store does not answer.
    ///
    /// # Errors
    /// The [`Stop`] of a shutdown or of a store that stays away.
    async fn wave_counts(&self, wave: u32) -> Result<WaveCounts, Stop> {
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
                match self.claim(wave).await {
                    Ok(claims) => queue.extend(claims),
                    Err(s) => {
                        stop = Some(s);
                        break;
                    }
                }
            }
            let Some(claim) = queue.pop_front() else {
                break;
            };
            claimed += 1;
            let tenant = match self.tenant(&claim.tenant).await {
                Ok(Some(tenant)) => tenant,
                Ok(None) => {
                    let report = TenantReport::unconfigured(&claim.tenant);
                    let finished = ctx.finish_tenant(&claim.tenant, report, Duration::ZERO);
                    ctx.finish_work(claim.position, Some(claim.lease), &finished, None)
                        .await;
                    self.failures.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                Err(s) => {
                    queue.push_front(claim);
                    stop = Some(s);
                    break;
                }
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
            let (ctx, failures) = (ctx.clone(), self.failures.clone());
            let (position, lease) = (claim.position, claim.lease.clone());
            let handle = running.spawn(
                async move {
                    let (finished, known) = ctx.run_tenant(&tenant).await;
                    if finished.outcome == TenantOutcome::Failed {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    ctx.finish_work(position, Some(lease), &finished, known)
                        .await;
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
                let claim: &Claim = &positions[&e.id()];
                let report = TenantReport::panicked(&claim.tenant, &e.to_string());
                let finished = ctx.finish_tenant(&claim.tenant, report, Duration::ZERO);
                ctx.finish_work(claim.position, Some(claim.lease.clone()), &finished, None)
                    .await;
                self.failures.fetch_add(1, Ordering::SeqCst);
            }
        }
        (claimed, stop.or_else(|| ctx.stopped()))
    }

    /// The next claimable tenants of wave `wave` (up to [`CLAIM_BATCH`]), leased to this
    /// replica; empty when there is none now.
    ///
    /// # Errors
    /// The [`Stop`] of a shutdown or of a store that stays away.
    async fn claim(&self, wave: u32) -> Result<Vec<Claim>, Stop> {
        let ctx = &self.ctx;
        let lease_ms = ctx.replica.lease.as_millis() as i64;
        ctx.retry("claiming tenants", || {
            ctx.store.claim(
                &ctx.id,
                wave,
                &ctx.replica.id,
                lease_ms,
                CLAIM_BATCH,
                self.limit,
            )
        })
        .await
    }

    /// Ends this replica's run. Stopped by a shutdown: the tenants it cut off are pending
    /// again; the rollout is left interrupted unless other replicas go on with it. Stopped
    /// by a store that stayed away: left interrupted, with the cause. Otherwise, once no
    /// tenant runs anywhere, the first replica here ends it with [`final_state`]: tenants
    /// never started are skipped, and `RolloutFinished` carries the store's totals.
    ///
    /// # Errors
    /// The [`Stop`] of a store that stayed away while the end was being written.
    async fn end(self, stop: Option<Stop>, clock: Instant) -> Result<(), Stop> {
        let ctx = self.ctx;
        ctx.writer.flush().await;
        match &stop {
            Some(Stop::Elsewhere) => return Ok(()),
            Some(Stop::Shutdown) => {
                if ctx.others_leasing().await {
                    tracing::info!("daemon stopping; other replicas go on with the rollout");
                    return Ok(());
                }
                return ctx.finish(RolloutState::Interrupted, "", clock).await;
            }
            Some(Stop::Store(cause)) => {
                tracing::error!(%cause, "control store lost; the rollout is left interrupted");
                let reason = format!("the control store did not answer: {cause}");
                return ctx.finish(RolloutState::Interrupted, &reason, clock).await;
            }
            _ => {}
        }
        // Ending it first: from now on no replica claims a tenant of it.
        let lease_ms = ctx.replica.lease.as_millis() as i64;
        let mine = ctx
            .retry("taking the end of the rollout", || {
                ctx.store.claim_finish(&ctx.id, &ctx.replica.id, lease_ms)
            })
            .await?;
        if !mine {
            return Ok(());
        }
        if stop.is_some() {
            // Tenants that other replicas run end first: nothing is skipped under them.
            ctx.wait_none_running().await?;
            ctx.writer.flush().await;
            if ctx.shutdown.is_cancelled() {
                // Stopping before they ended: leave the ending to a replica that stays, or
                // leave the rollout interrupted when none runs it.
                if let Err(e) = ctx.store.unclaim_finish(&ctx.id, &ctx.replica.id).await {
                    tracing::warn!("giving back the end of the rollout: {e}");
                }
                if !ctx.others_leasing().await {
                    ctx.finish(RolloutState::Interrupted, "", clock).await?;
                }
                return Ok(());
            }
        }
        let works = ctx
            .retry("reading the rollout's tenants", || ctx.store.works(&ctx.id))
            .await?;
        let stored = ctx
            .retry("reading the rollout's state", || {
                ctx.store.rollout_state(&ctx.id)
            })
            .await?;
        let state = final_state(
            stop.as_ref(),
            &works,
            stored == Some(RolloutState::Cancelled),
        );
        if state != RolloutState::Interrupted {
            for work in works.iter().filter(|w| !w.state.is_done()) {
                let finished =
                    ctx.finish_tenant(&work.tenant, TenantReport::skipped(), Duration::ZERO);
                ctx.finish_work(work.position, None, &finished, None).await;
            }
        }
        let reason = stop.as_ref().map(Stop::reason).unwrap_or_default();
        ctx.finish(state, &reason, clock).await
    }
}

impl RolloutCtx {
    /// True when another replica runs a tenant of this rollout now. A store that does
    /// not answer counts as yes: the rollout stays running, and its leases run out.
    async fn others_leasing(&self) -> bool {
        self.store
            .others_leasing(&self.id, &self.replica.id)
            .await
            .unwrap_or(true)
    }

    /// Waits until no tenant of the rollout runs on any replica (leases that ran out do
    /// not count), or the daemon stops.
    ///
    /// # Errors
    /// The [`Stop`] of a store that stays away (never "none running").
    async fn wait_none_running(&self) -> Result<(), Stop> {
        loop {
            let running = match self
                .retry("counting running tenants", || {
                    self.store.running_count(&self.id)
                })
                .await
            {
                Ok(n) => n,
                Err(Stop::Shutdown) => return Ok(()),
                Err(s) => return Err(s),
            };
            if running == 0 || self.shutdown.is_cancelled() {
                return Ok(());
            }
            tokio::time::sleep(WAVE_POLL).await;
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
