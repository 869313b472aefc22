//! This daemon among the replicas that share a control store. Its heartbeat says it is
//! alive and extends the leases of the tenants it runs; it joins every running rollout with
//! a tenant to claim (one that another replica started, or whose replica died); and each
//! rollout it runs follows the state in the store, so a pause, resume or cancel sent to any
//! replica reaches every replica within [`FOLLOW`].

use std::{
    sync::{Arc, PoisonError},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::{RolloutCtx, Runner};
use crate::model::RolloutState;

/// How often a rollout run here reads its state from the store.
const FOLLOW: Duration = Duration::from_millis(500);

/// How often this daemon looks for rollouts to join.
const JOIN: Duration = Duration::from_secs(1);

/// This daemon as one replica: its id in the control store and its lease timeout.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    /// Stable across restarts of the same daemon (`<instance_id>/<listen address>`), so a
    /// restarted daemon takes back at once the tenants it held when it died.
    pub(crate) id: String,
    /// A tenant whose replica has not renewed its lease for this long is claimable by
    /// another replica (default 30 s). The heartbeat runs every third of it.
    pub(crate) lease: Duration,
}

impl Runner {
    /// Until `stop`: the heartbeat every third of the lease timeout, and a look for
    /// rollouts to join every [`JOIN`] (none once shutdown began). At `stop` (after the
    /// drain: tenants in flight keep their leases), the replica's row is removed so the
    /// others do not wait for it.
    pub(crate) async fn serve_replica(self: Arc<Self>, stop: CancellationToken) {
        let beat = (self.replica.lease / 3).max(Duration::from_millis(100));
        let mut heartbeat = tokio::time::interval(beat);
        let mut join = tokio::time::interval(JOIN);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = join.tick() => self.join_rollouts().await,
            }
        }
        if let Err(e) = self.store.remove_replica(&self.replica.id).await {
            tracing::warn!("leaving the control store: {e}");
        }
    }

    /// Says this replica is alive and extends its leases.
    pub(crate) async fn heartbeat(&self) {
        let lease_ms = self.replica.lease.as_millis() as i64;
        if let Err(e) = self.store.heartbeat(&self.replica.id, lease_ms).await {
            tracing::warn!("replica heartbeat: {e}");
        }
    }

    /// Joins every running rollout that this daemon does not run and that has a tenant to
    /// claim, or that nobody alive is ending ([`crate::store::Store::joinable`]). A rollout whose set changed here is left to the replicas that have its set.
    async fn join_rollouts(&self) {
        if self.is_shutting_down() {
            return;
        }
        let lease_ms = self.replica.lease.as_millis() as i64;
        let joinable = match self.store.joinable(lease_ms).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!("looking for rollouts to join: {e}");
                return;
            }
        };
        for record in joinable {
            if self.ctx(&record.id).is_some() {
                continue;
            }
            self.prepare_pinned(&record).await;
            match self.scope_of(&record) {
                Ok((fleet, set)) => {
                    tracing::info!(rollout_id = %record.id, "joining a rollout");
                    let ctx = self.context(
                        &record.id,
                        record.spec.clone(),
                        fleet,
                        set,
                        &record.created_by,
                    );
                    self.spawn(ctx, record);
                }
                Err(e) => {
                    let mut declined = self.declined.lock().unwrap_or_else(PoisonError::into_inner);
                    if declined.insert(record.id.clone()) {
                        tracing::warn!(rollout_id = %record.id, "not joining: {e}");
                    }
                }
            }
        }
    }
}

impl RolloutCtx {
    /// Until `done`: reads the rollout's state and pauses, resumes or cancels this
    /// replica's run to match.
    pub(super) async fn follow(&self, done: CancellationToken) {
        loop {
            tokio::select! {
                () = done.cancelled() => return,
                () = tokio::time::sleep(FOLLOW) => {}
            }
            let steered = self.steered.load(std::sync::atomic::Ordering::SeqCst);
            let state = self.store.rollout_state(&self.id).await;
            if self.steered.load(std::sync::atomic::Ordering::SeqCst) != steered {
                // Paused or resumed here while the state was read: the read is stale.
                continue;
            }
            match state {
                Ok(Some(RolloutState::Paused)) => {
                    self.paused
                        .send_if_modified(|p| !std::mem::replace(p, true));
                }
                Ok(Some(RolloutState::Running)) => {
                    self.paused
                        .send_if_modified(|p| std::mem::replace(p, false));
                }
                Ok(Some(RolloutState::Cancelled)) => self.cancelled.cancel(),
                Ok(Some(RolloutState::Interrupted)) => self.ended_elsewhere.cancel(),
                Ok(_) => {}
                Err(e) => tracing::warn!("reading the rollout's state: {e}"),
            }
        }
    }
}
