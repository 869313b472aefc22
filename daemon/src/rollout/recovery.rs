//! A runner's start and stop: at start, what a stopped daemon left is ended (interrupted);
//! at shutdown, rollouts still running after the grace are left interrupted; and the one way
//! a rollout nobody runs is ended (`end_here`), through the state table like every change.

use std::{sync::Arc, sync::PoisonError, time::Duration};

use super::{RolloutCtx, control::Runner};
use crate::{
    model::{EventKind, RolloutRecord, RolloutState, RolloutStep, RolloutSummary},
    store::{Changed, StoreError},
};

/// How long the drain waits, after cancelling what still runs on the servers at the end of
/// the shutdown grace, for the tenants to see their statements fail and roll back.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

impl Runner {
    /// Ends rollout `id`, which nobody runs, in the state `step` leads to, with a
    /// `RolloutFinished` carrying `record`'s totals. False when it was ended already.
    pub(super) async fn end_here(
        &self,
        record: &RolloutRecord,
        step: RolloutStep,
    ) -> Result<bool, StoreError> {
        let summary = RolloutSummary {
            succeeded: record.succeeded,
            failed: record.failed,
            skipped: record.skipped,
            migrations_run: record.migrations_run,
            duration_ms: 0,
            state: RolloutState::Interrupted,
            reason: String::new(),
        };
        let changed = self
            .writer
            .change_state(&record.id, step, move |state| {
                EventKind::RolloutFinished(RolloutSummary { state, ..summary })
            })
            .await?;
        if self.ctx(&record.id).is_none() {
            self.writer.forget(&record.id);
        }
        Ok(matches!(changed, Changed::To(..)))
    }

    /// At start: says this replica is alive and takes back what it held in an earlier
    /// life. Then, unless another replica is alive (it goes on with them), rollouts a
    /// stopped daemon left pending or running are marked interrupted (a cancelled one not
    /// yet ended is ended cancelled), with a `RolloutFinished` saying so. Returns how many.
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
        let unended = self.store.unended().await?;
        let mut ended = 0;
        for record in &unended {
            if self.end_here(record, RolloutStep::Interrupt).await? {
                tracing::warn!(rollout_id = %record.id, "rollout interrupted by a daemon stop; resume it");
                ended += 1;
            }
        }
        Ok(ended)
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
                let ended = match self.store.rollout(&ctx.id).await {
                    Ok(Some(record)) => self.end_here(&record, RolloutStep::Interrupt).await,
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                };
                if let Err(e) = ended {
                    tracing::error!(rollout_id = %ctx.id, "leaving the rollout interrupted: {e}");
                }
            }
        }
    }
}
