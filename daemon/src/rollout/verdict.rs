//! How a run ends, decided by facts only: why it stopped, and the work items as the control
//! store holds them. A read of the store that fails never stands in for a fact (no "no
//! tenants failed" because the read failed): every read of the runner is retried, and a
//! store that stays away past [`STORE_PATIENCE`] stops the run, which is then left
//! `interrupted` with the cause, resumable.

use std::{sync::Arc, time::Duration, time::Instant};

use crate::{
    model::{EventKind, RolloutState, RolloutStep, RolloutSummary, TenantWork, WorkState},
    store::{Changed, StoreError},
    telemetry::fail,
};

use super::RolloutCtx;

/// How long the runner retries a control store that does not answer before it stops the
/// run (left interrupted, with the cause).
pub(super) const STORE_PATIENCE: Duration = Duration::from_secs(60);

/// Why a run stops starting tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
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
    /// The control store did not answer for [`STORE_PATIENCE`]: the cause.
    Store(Arc<str>),
    /// The canary wave ran nothing while later tenants have work: why.
    CanaryIdle(Arc<str>),
}

impl Stop {
    /// Why the run stopped, for the rollout's `RolloutFinished`, when its state alone
    /// does not say.
    pub(super) fn reason(&self) -> String {
        match self {
            Self::Store(cause) => format!("the control store did not answer: {cause}"),
            Self::CanaryIdle(why) => why.to_string(),
            _ => String::new(),
        }
    }
}

/// The state a run ends the rollout in: `cancelled` when a cancel was stored; `failed` when
/// a tenant failed or the run stopped on a failed canary or past the failure threshold;
/// `interrupted` when tenants are left unfinished and the run was not stopped on purpose
/// (a shutdown that came as the last wave ended); `succeeded` otherwise. A run stopped by a
/// shutdown, elsewhere or by the store is left interrupted before this is asked.
pub(super) fn final_state(
    stop: Option<&Stop>,
    works: &[TenantWork],
    cancelled: bool,
) -> RolloutState {
    if cancelled || stop == Some(&Stop::Cancelled) {
        RolloutState::Cancelled
    } else if matches!(
        stop,
        Some(Stop::Canary | Stop::Failures | Stop::CanaryIdle(_))
    ) || works.iter().any(|w| w.state == WorkState::Failed)
    {
        RolloutState::Failed
    } else if matches!(
        stop,
        Some(Stop::Shutdown | Stop::Elsewhere | Stop::Store(_))
    ) || works.iter().any(|w| !w.state.is_done())
    {
        RolloutState::Interrupted
    } else {
        RolloutState::Succeeded
    }
}

impl RolloutCtx {
    /// Ends the rollout in `state` (`interrupted`, or the run's verdict) with a
    /// `RolloutFinished` carrying the store's totals and `reason` (empty when the state
    /// says it all), where the state table allows it: a
    /// cancel stored first makes it `cancelled`; a rollout another replica ended already is
    /// left as it is.
    ///
    /// # Errors
    /// The [`Stop`] of a store that stayed away; nothing was ended then.
    pub(super) async fn finish(
        &self,
        state: RolloutState,
        reason: &str,
        clock: Instant,
    ) -> Result<(), Stop> {
        self.writer.flush().await;
        let record = self
            .retry("reading the rollout's totals", || {
                self.store.rollout(&self.id)
            })
            .await?;
        let counts = RolloutSummary {
            succeeded: record.as_ref().map_or(0, |r| r.succeeded),
            failed: record.as_ref().map_or(0, |r| r.failed),
            skipped: record.as_ref().map_or(0, |r| r.skipped),
            migrations_run: record.as_ref().map_or(0, |r| r.migrations_run),
            duration_ms: clock.elapsed().as_millis() as u64,
            state,
            reason: reason.to_owned(),
        };
        let step = match state {
            RolloutState::Interrupted => RolloutStep::Interrupt,
            verdict => RolloutStep::End(verdict),
        };
        let changed = self
            .retry("ending the rollout", || {
                let summary = counts.clone();
                self.writer.change_state(&self.id, step, move |state| {
                    EventKind::RolloutFinished(RolloutSummary { state, ..summary })
                })
            })
            .await?;
        let state = match changed {
            Changed::To(state, _) => state,
            Changed::Refused(refused) => {
                tracing::info!("rollout not ended here: {refused}");
                return Ok(());
            }
        };
        // Called in the rollout's span.
        let span = tracing::Span::current();
        span.record("avocet.state", state.as_str());
        if state == RolloutState::Failed {
            let message = format!(
                "{} of {} tenants failed",
                counts.failed,
                record.as_ref().map_or(0, |r| r.tenant_count)
            );
            fail(&span, "rollout_failed", &message);
        }
        tracing::info!(
            state = state.as_str(),
            succeeded = counts.succeeded,
            failed = counts.failed,
            skipped = counts.skipped,
            "rollout finished"
        );
        Ok(())
    }

    /// After an apply's canary wave (wave 0) ended without a failure: why it protects
    /// nothing, when it ran no migration while a tenant of a later wave is not known to be
    /// up to date; `None` when it ran something, or when nobody has work.
    ///
    /// # Errors
    /// The [`Stop`] of a store that stays away.
    pub(super) async fn canary_idle(&self) -> Result<Option<Arc<str>>, Stop> {
        let record = self
            .retry("reading the rollout's totals", || {
                self.store.rollout(&self.id)
            })
            .await?;
        if record.is_none_or(|r| r.migrations_run > 0) {
            return Ok(None);
        }
        let works = self
            .retry("reading the rollout's tenants", || {
                self.store.works(&self.id)
            })
            .await?;
        let (canaries, later): (Vec<_>, Vec<_>) = works.iter().partition(|w| w.wave == 0);
        let later: Vec<&str> = later.iter().map(|w| w.tenant.as_str()).collect();
        let known = self
            .retry("reading last-known tenant states", || {
                self.store.known_states_of(&self.fleet.name, &later)
            })
            .await?;
        let up_to_date = known
            .iter()
            .filter(|k| k.classify(&self.set).class == crate::model::TenantClass::UpToDate)
            .count();
        if up_to_date == later.len() {
            return Ok(None);
        }
        let names: Vec<&str> = canaries.iter().map(|w| w.tenant.as_str()).collect();
        Ok(Some(
            format!(
                "the canary wave ran nothing: {} had no migration to run, while {} later \
                 tenant(s) have work; the rollout stops before them (pick canaries with work \
                 to do, or apply without --canary)",
                names.join(", "),
                later.len() - up_to_date
            )
            .into(),
        ))
    }

    /// `op` until the store answers, backing off (50 ms doubling to 5 s).
    ///
    /// # Errors
    /// [`Stop::Shutdown`] when the daemon stops first; [`Stop::Store`] with the last error
    /// once the store has not answered for [`STORE_PATIENCE`].
    pub(super) async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if started.elapsed() >= STORE_PATIENCE => {
                    tracing::error!("{what}: {e}; giving up after {STORE_PATIENCE:?}");
                    return Err(Stop::Store(format!("{what}: {e}").into()));
                }
                Err(e) => {
                    tracing::warn!("{what}: {e}; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.shutdown.cancelled() => return Err(Stop::Shutdown),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn works(states: &[WorkState]) -> Vec<TenantWork> {
        states
            .iter()
            .enumerate()
            .map(|(i, &state)| TenantWork {
                tenant: format!("t{i}"),
                position: i as u32,
                wave: 0,
                state,
                attempts: 1,
                last_error: None,
            })
            .collect()
    }

    #[test]
    fn a_run_stopped_on_failures_never_succeeds() {
        use WorkState::*;
        let done = works(&[Succeeded, Succeeded]);
        // Stopped on a failed canary or past the threshold: failed, whatever the items say
        // (a read that saw none failed must not turn it into a success).
        assert_eq!(
            final_state(Some(&Stop::Canary), &done, false),
            RolloutState::Failed
        );
        assert_eq!(
            final_state(Some(&Stop::Failures), &[], false),
            RolloutState::Failed
        );
        assert_eq!(final_state(None, &done, false), RolloutState::Succeeded);
        assert_eq!(
            final_state(None, &works(&[Succeeded, Failed]), false),
            RolloutState::Failed
        );
        assert_eq!(
            final_state(None, &works(&[Succeeded, Skipped]), false),
            RolloutState::Succeeded
        );
    }

    #[test]
    fn a_stored_cancel_wins_and_unfinished_work_is_interrupted() {
        use WorkState::*;
        let failed = works(&[Failed]);
        assert_eq!(final_state(None, &failed, true), RolloutState::Cancelled);
        assert_eq!(
            final_state(Some(&Stop::Cancelled), &failed, false),
            RolloutState::Cancelled
        );
        assert_eq!(
            final_state(None, &works(&[Succeeded, Pending]), false),
            RolloutState::Interrupted
        );
        assert_eq!(
            final_state(None, &works(&[Running]), false),
            RolloutState::Interrupted
        );
        assert_eq!(
            final_state(Some(&Stop::Store("gone".into())), &[], false),
            RolloutState::Interrupted
        );
    }
}
