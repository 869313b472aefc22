//! Rollouts: durable jobs. A rollout is created in the control store with one work item per
//! tenant, then run in waves by tasks that outlive the request that started it: on every
//! replica that shares the store, each claiming one tenant at a time under a lease. Every
//! event is stored (and numbered) before anyone sees it, so any caller of any replica can
//! follow it (`watch`), and a rollout no daemon finished is marked interrupted and can be
//! resumed.
//!
//! | file | what |
//! | --- | --- |
//! | `control.rs` | the runner: start, pause, resume, cancel |
//! | `error.rs` | [`RunnerError`]: why a rollout could not be started or changed |
//! | `recovery.rs` | recovery at start, drain at stop, ending a rollout nobody runs |
//! | `replica.rs` | this daemon among others: heartbeat, joining rollouts, following their state |
//! | `job.rs` | one rollout's run here: waves, claims, concurrency, canary, failure threshold |
//! | `verdict.rs` | how a run ends: the pure `final_state`, the store's patience, the canary check, `finish` |
//! | `writer.rs` | the one task that stores events in batches, then tells watchers |
//! | `watch.rs` | a rollout's events from a sequence number: stored, then live |
//! | `census.rs` | a tenant's schema after its run: the version's expected one kept, or a `SchemaDrift` warning |
//! | `tenant.rs` | one tenant: the engine's run (`crate::migrate`) with this rollout's events |
//! | `published.rs` | a published set read from the store (files checked) for a rollout pinned to it |
//!
//! The rollout schedules; it runs no SQL of its own. What happens on a tenant, and how it is
//! recorded there, is `crate::migrate`'s.

mod census;
mod control;
mod error;
mod job;
mod published;
mod recovery;
mod replica;
mod tenant;
mod verdict;
mod watch;
mod writer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub(crate) use control::{Runner, StartRequest, identity_of};
pub use error::RunnerError;
pub(crate) use published::published_set;
pub(crate) use replica::Replica;
pub(crate) use watch::watch;

use crate::{
    fleet::{Fleet, Registry},
    model::{
        EventKind, FailureCode, MigrationSet, RolloutEvent, RolloutSpec, TenantFinished,
        TenantOutcome, WorkState,
    },
    store::{KnownState, Lease, Store, Write},
    telemetry::Metrics,
};
use writer::Writer;

/// Shared state of one running rollout.
pub(crate) struct RolloutCtx {
    id: String,
    /// The name of the identity that started it, for `max_running_rollouts_per_identity`.
    identity: String,
    spec: RolloutSpec,
    fleet: Arc<Fleet>,
    set: Arc<MigrationSet>,
    registry: Arc<Registry>,
    metrics: Metrics,
    /// Backups before risky migrations, as the fleet's policy says.
    backups: Arc<crate::backup::Backups>,
    writer: Writer,
    store: Arc<Store>,
    replica: Arc<Replica>,
    /// True while paused: no tenant starts.
    paused: tokio::sync::watch::Sender<bool>,
    /// Counts pauses and resumes made here, so a state the follower read before one of
    /// them (stale) does not undo it.
    steered: std::sync::atomic::AtomicU64,
    /// A caller cancelled: no tenant starts, tenants in flight stop between migrations.
    cancelled: CancellationToken,
    /// The daemon is stopping: the same, and the rollout is left interrupted.
    shutdown: CancellationToken,
    /// Another replica marked the rollout interrupted (it stopped, and nobody else ran
    /// it): this run stops starting tenants and ends without an event of its own.
    ended_elsewhere: CancellationToken,
    /// The expected schema of each version (its text) this run has recorded or read
    /// (`census_on_apply`): the store's never change once written.
    expected: std::sync::Mutex<std::collections::HashMap<String, crate::store::ExpectedSchema>>,
    /// The fingerprint the fleet's last census found expected at each version, read once
    /// (`--require-expected-schema`).
    census_expected: tokio::sync::OnceCell<std::collections::HashMap<String, String>>,
}

impl RolloutCtx {
    /// Queues `kind` as the rollout's next event; the store numbers it.
    async fn emit(&self, kind: EventKind) {
        self.writer.send(Write::Event(event(&self.id, kind))).await;
    }

    /// Pauses or resumes this replica's run at once (a call to this replica).
    fn set_paused(&self, paused: bool) {
        self.steered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.paused.send_replace(paused);
    }

    /// True once tenants in flight must stop before their next migration.
    fn stop_between_migrations(&self) -> bool {
        self.shutdown.is_cancelled() || self.cancelled.is_cancelled()
    }

    /// Records a finished tenant's work item with its `TenantFinished` event, fenced by
    /// `lease` (the claim that ran it; `None` for an item skipped before anyone ran it),
    /// and its last-known state; returns the item's new state. A write whose lease was lost
    /// is refused by the store, event included.
    async fn finish_work(
        &self,
        position: u32,
        lease: Option<Lease>,
        finished: &TenantFinished,
        known: Option<KnownState>,
    ) -> WorkState {
        let cut_off = finished
            .error
            .as_ref()
            .is_some_and(|e| e.code == FailureCode::Cancelled);
        let state = match finished.outcome {
            // A tenant the daemon's shutdown cut off runs again on resume; its history
            // table says what is left.
            _ if cut_off && self.shutdown.is_cancelled() => WorkState::Pending,
            TenantOutcome::Succeeded | TenantOutcome::Planned => WorkState::Succeeded,
            TenantOutcome::Failed => WorkState::Failed,
            TenantOutcome::Skipped => WorkState::Skipped,
        };
        self.writer
            .send(Write::Work {
                rollout_id: self.id.clone(),
                position,
                lease,
                state,
                error: finished.error.as_ref().map(|e| e.message.clone()),
                event: Some(event(&self.id, EventKind::TenantFinished(finished.clone()))),
            })
            .await;
        if let Some(known) = known {
            self.writer.send(Write::Known(known)).await;
        }
        state
    }
}

/// Event `kind` of rollout `id`, stamped now, to be numbered by the store.
fn event(id: &str, kind: EventKind) -> RolloutEvent {
    RolloutEvent {
        rollout_id: id.to_owned(),
        seq: 0,
        at_unix_ms: crate::store::now_ms(),
        kind,
    }
}
