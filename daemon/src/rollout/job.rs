//! One rollout's run: its waves in order, tenants under the strategy's concurrency (and per
//! host), stopping at a failed canary or past `max_failures`, pausing between tenants when
//! asked, and ending with a final state that says whether it can be resumed.

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

use super::{RolloutCtx, report::TenantReport};
use crate::{
    fleet::Tenant,
    model::{
        EventKind, RolloutRecord, RolloutState, RolloutSummary, TenantOutcome, TenantWork,
        WorkState,
    },
    plan::WaveSpan,
    store::Write,
};

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
}

/// One work item with its tenant (`None`: no longer configured).
pub(super) struct Item {
    pub(super) work: TenantWork,
    pub(super) tenant: Option<Arc<Tenant>>,
}

/// Runs the rollout's remaining work, then emits `RolloutFinished`.
pub(super) async fn run(
    ctx: Arc<RolloutCtx>,
    record: RolloutRecord,
    items: Vec<Item>,
    waves: Vec<WaveSpan>,
) {
    let clock = Instant::now();
    let strategy = ctx.spec.strategy;
    let failures = Arc::new(AtomicU32::new(record.failed));
    let limit = strategy
        .max_failures
        .map(|a| a.of(record.tenant_count as usize) as u32);
    let permits = Arc::new(Semaphore::new(strategy.concurrency.max(1) as usize));
    let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut states: Vec<WorkState> = items.iter().map(|i| i.work.state).collect();
    let mut migrations_run = record.migrations_run;
    let mut stop = None;
    let mut started_a_wave = false;
    let mut started = std::collections::HashSet::new();
    for wave in &waves {
        let todo: Vec<&Item> = items[wave.tenants.clone()]
            .iter()
            .filter(|i| !i.work.state.is_done())
            .collect();
        if todo.is_empty() {
            continue;
        }
        if started_a_wave && strategy.pause_between_waves_ms > 0 {
            let pause = Duration::from_millis(strategy.pause_between_waves_ms);
            if let Some(s) = ctx.sleep_unless_stopped(pause).await {
                stop = Some(s);
                break;
            }
        }
        started_a_wave = true;
        ctx.emit(EventKind::WaveStarted {
            index: wave.index,
            canary: wave.canary,
            tenant_count: todo.len() as u32,
        })
        .await;
        let mut running = JoinSet::new();
        let mut positions = HashMap::new();
        for item in todo {
            if let Some(s) = ctx.wait_while_paused().await {
                stop = Some(s);
                break;
            }
            if limit.is_some_and(|l| failures.load(Ordering::SeqCst) > l) {
                stop = Some(Stop::Failures);
                break;
            }
            let Some(tenant) = item.tenant.clone() else {
                started.insert(item.work.position);
                let report = TenantReport::unconfigured(&item.work.tenant);
                let finished = ctx.finish_tenant(&item.work.tenant, report, 0).await;
                states[item.work.position as usize] =
                    ctx.finish_work(&item.work, &finished, None).await;
                failures.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            // The semaphores are never closed, so acquiring cannot fail.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                continue;
            };
            let host_permit = match (strategy.per_host_concurrency, tenant.host()) {
                (Some(n), Some(host)) => {
                    let sem = hosts
                        .entry(host)
                        .or_insert_with(|| Arc::new(Semaphore::new(n.max(1) as usize)))
                        .clone();
                    sem.acquire_owned().await.ok()
                }
                _ => None,
            };
            // Waiting for a permit may have taken a while: look again before starting.
            if let Some(s) = ctx.wait_while_paused().await {
                stop = Some(s);
                break;
            }
            if limit.is_some_and(|l| failures.load(Ordering::SeqCst) > l) {
                stop = Some(Stop::Failures);
                break;
            }
            started.insert(item.work.position);
            ctx.writer
                .send(Write::Work {
                    rollout_id: ctx.id.clone(),
                    position: item.work.position,
                    state: WorkState::Running,
                    error: None,
                })
                .await;
            let (ctx, work, failures) = (ctx.clone(), item.work.clone(), failures.clone());
            let handle = running.spawn(
                async move {
                    let (finished, known) = ctx.run_tenant(&tenant).await;
                    if finished.outcome == TenantOutcome::Failed {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    let state = ctx.finish_work(&work, &finished, known).await;
                    drop((permit, host_permit));
                    (work.position, finished, state)
                }
                .in_current_span(),
            );
            positions.insert(handle.id(), item.work.clone());
        }
        let mut canary_failed = false;
        while let Some(done) = running.join_next_with_id().await {
            let (position, finished, state) = match done {
                Ok((_, done)) => done,
                Err(e) => {
                    // A bug, not a database error: report it as the tenant's failure.
                    let work: &TenantWork = &positions[&e.id()];
                    let report = TenantReport::panicked(&work.tenant, &e.to_string());
                    let finished = ctx.finish_tenant(&work.tenant, report, 0).await;
                    let state = ctx.finish_work(work, &finished, None).await;
                    failures.fetch_add(1, Ordering::SeqCst);
                    (work.position, finished, state)
                }
            };
            states[position as usize] = state;
            migrations_run += finished.migrations_run;
            canary_failed |= wave.canary && finished.outcome == TenantOutcome::Failed;
        }
        if stop.is_none() && canary_failed {
            stop = Some(Stop::Canary);
        }
        if stop.is_none() && limit.is_some_and(|l| failures.load(Ordering::SeqCst) > l) {
            stop = Some(Stop::Failures);
        }
        if stop.is_none() {
            stop = ctx.stopped();
        }
        if stop.is_some() {
            break;
        }
    }
    let state = match stop {
        Some(Stop::Shutdown) => RolloutState::Interrupted,
        Some(Stop::Cancelled) => RolloutState::Cancelled,
        _ if states.contains(&WorkState::Failed) => RolloutState::Failed,
        // Tenants cut off by a shutdown that came as the last wave ended.
        _ if states.contains(&WorkState::Pending) => RolloutState::Interrupted,
        _ => RolloutState::Succeeded,
    };
    if state != RolloutState::Interrupted {
        // Tenants that never started: skipped, each said so.
        let never_started = items
            .iter()
            .filter(|i| !i.work.state.is_done() && !started.contains(&i.work.position));
        for item in never_started {
            let finished = ctx
                .finish_tenant(&item.work.tenant, TenantReport::skipped(), 0)
                .await;
            states[item.work.position as usize] =
                ctx.finish_work(&item.work, &finished, None).await;
        }
    }
    let (succeeded, failed, skipped) = super::summarise(&states);
    let summary = RolloutSummary {
        succeeded,
        failed,
        skipped,
        migrations_run,
        duration_ms: clock.elapsed().as_millis() as u64,
        state,
    };
    tracing::info!(
        state = state.as_str(),
        succeeded = summary.succeeded,
        failed = summary.failed,
        skipped = summary.skipped,
        "rollout finished"
    );
    ctx.emit(EventKind::RolloutFinished(summary)).await;
}

impl RolloutCtx {
    /// Why the run must stop starting tenants, if it must.
    fn stopped(&self) -> Option<Stop> {
        if self.shutdown.is_cancelled() {
            Some(Stop::Shutdown)
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
            }
        }
    }

    /// Sleeps `d` unless the rollout stops first.
    async fn sleep_unless_stopped(&self, d: Duration) -> Option<Stop> {
        tokio::select! {
            () = tokio::time::sleep(d) => self.wait_while_paused().await,
            () = self.shutdown.cancelled() => Some(Stop::Shutdown),
            () = self.cancelled.cancelled() => Some(Stop::Cancelled),
        }
    }
}
