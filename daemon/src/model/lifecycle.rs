//! The two state machines of a rollout, as pure tables: the rollout's own
//! [`RolloutState`] and each tenant's [`WorkState`] within it. The control store applies a
//! change only where these tables allow it (a compare-and-set on the stored state), so two
//! replicas, or a caller and a replica, racing on one rollout can never take it somewhere the
//! table does not go: a finished rollout stays finished.
//!
//! ```text
//!             Start            End(verdict)
//!   pending ────────> running ─────────────> succeeded | failed
//!     ^  │              │  ^                       
//!     │  │         Pause│  │Resume         Cancel (pending, running, paused, interrupted)
//!     │  │              v  │               ────────> cancelled ──End──> cancelled (ended)
//!     │  │            paused ──End(verdict)──> succeeded | failed
//!     │  │              │
//!     │  └──Interrupt───┴──> interrupted ──Reopen──> pending ──Resume──> running
//! ```

use super::{RolloutState, WorkState};

/// What changes a rollout's state: a caller's request or the runner's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolloutStep {
    /// The runner begins a new rollout, or a reopened one.
    Start,
    /// A caller pauses it: no tenant starts until it is resumed.
    Pause,
    /// A caller resumes a paused or reopened rollout.
    Resume,
    /// A caller resumes a rollout nobody runs: it is opened for a new run.
    Reopen,
    /// A caller cancels it: no tenant starts, tenants in flight stop between migrations;
    /// the runner then ends it `cancelled`.
    Cancel,
    /// The daemon that ran it stops (shutdown, or found stopped at start): resumable.
    Interrupt,
    /// The runner ends it with its verdict (`succeeded`, `failed` or `cancelled`); a
    /// cancel that came first wins over the verdict.
    End(RolloutState),
}

impl RolloutStep {
    /// The step's name in messages: `start`, `pause`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Reopen => "reopen",
            Self::Cancel => "cancel",
            Self::Interrupt => "interrupt",
            Self::End(_) => "end",
        }
    }

    /// True for the steps that end a run: at most one per run is applied (the store keeps
    /// `finished_at` for it), so `RolloutFinished` is stored once.
    pub fn ends(self) -> bool {
        matches!(self, Self::End(_) | Self::Interrupt)
    }
}

/// A state change the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} rollout cannot take the step {:?} ({})", .from.as_str(), .step, .step.as_str())]
pub struct Refused {
    /// The state the rollout was in.
    pub from: RolloutState,
    /// The step refused.
    pub step: RolloutStep,
}

/// Every rollout state, for tables and exhaustive tests.
pub const ROLLOUT_STATES: [RolloutState; 7] = [
    RolloutState::Pending,
    RolloutState::Running,
    RolloutState::Paused,
    RolloutState::Succeeded,
    RolloutState::Failed,
    RolloutState::Cancelled,
    RolloutState::Interrupted,
];

impl RolloutState {
    /// The state after `step`, or [`Refused`] when the table has no such edge (see the
    /// module's diagram).
    ///
    /// # Errors
    /// [`Refused`] naming this state and the step.
    pub fn after(self, step: RolloutStep) -> Result<RolloutState, Refused> {
        use RolloutState as S;
        use RolloutStep as T;
        let to = match (self, step) {
            (S::Pending, T::Start | T::Resume) => Some(S::Running),
            (S::Running, T::Pause) => Some(S::Paused),
            (S::Paused, T::Resume) => Some(S::Running),
            (S::Interrupted, T::Reopen) => Some(S::Pending),
            (S::Pending | S::Running | S::Paused | S::Interrupted, T::Cancel) => Some(S::Cancelled),
            (S::Pending | S::Running | S::Paused, T::Interrupt) => Some(S::Interrupted),
            // A cancelled rollout a stopping daemon leaves is ended as cancelled: the
            // cancel was asked, and nothing resumes it.
            (S::Cancelled, T::Interrupt) => Some(S::Cancelled),
            (S::Running | S::Paused, T::End(v @ (S::Succeeded | S::Failed))) => Some(v),
            (S::Cancelled, T::End(S::Succeeded | S::Failed | S::Cancelled)) => Some(S::Cancelled),
            // The runner ends a rollout cancelled only after a stored cancel.
            _ => None,
        };
        to.ok_or(Refused { from: self, step })
    }

    /// Every `(from, to)` edge `step` takes: what a compare-and-set of the stored state
    /// may match, and what it writes for each.
    pub fn edges(step: RolloutStep) -> Vec<(RolloutState, RolloutState)> {
        ROLLOUT_STATES
            .iter()
            .filter_map(|&from| from.after(step).ok().map(|to| (from, to)))
            .collect()
    }
}

/// What changes a tenant's work item within a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkStep {
    /// A replica claims it (a new lease epoch): from pending, or from running whose lease
    /// ran out.
    Claim,
    /// Its replica finished it with this outcome (`succeeded`, `failed`, `skipped`: stopped
    /// before its first migration) or stopped it (`pending`: cut off by a shutdown, to run
    /// again).
    Finish(WorkState),
    /// Its replica gives it back unstarted, or a reopen finds it left running.
    Release,
    /// The rollout ended before anyone ran it: pending, or running on a lease that ran out
    /// (its replica died; the store checks the lease).
    Skip,
}

impl WorkState {
    /// The state after `step`, or `None` when the table has no such edge.
    pub fn after(self, step: WorkStep) -> Option<WorkState> {
        use WorkState as W;
        match (self, step) {
            (W::Pending | W::Running, WorkStep::Claim) => Some(W::Running),
            (
                W::Running,
                WorkStep::Finish(to @ (W::Succeeded | W::Failed | W::Skipped | W::Pending)),
            ) => Some(to),
            (W::Running, WorkStep::Release) => Some(W::Pending),
            (W::Pending | W::Running, WorkStep::Skip) => Some(W::Skipped),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RolloutState as S;
    use RolloutStep as T;

    fn steps() -> Vec<RolloutStep> {
        let mut steps = vec![
            T::Start,
            T::Pause,
            T::Resume,
            T::Reopen,
            T::Cancel,
            T::Interrupt,
        ];
        steps.extend(ROLLOUT_STATES.map(T::End));
        steps
    }

    /// Every (state, step) pair, against the diagram written out as the list of edges.
    #[test]
    fn every_pair_follows_the_diagram() {
        let allowed = [
            (S::Pending, T::Start, S::Running),
            (S::Pending, T::Resume, S::Running),
            (S::Running, T::Pause, S::Paused),
            (S::Paused, T::Resume, S::Running),
            (S::Interrupted, T::Reopen, S::Pending),
            (S::Pending, T::Cancel, S::Cancelled),
            (S::Running, T::Cancel, S::Cancelled),
            (S::Paused, T::Cancel, S::Cancelled),
            (S::Interrupted, T::Cancel, S::Cancelled),
            (S::Pending, T::Interrupt, S::Interrupted),
            (S::Running, T::Interrupt, S::Interrupted),
            (S::Paused, T::Interrupt, S::Interrupted),
            (S::Cancelled, T::Interrupt, S::Cancelled),
            (S::Running, T::End(S::Succeeded), S::Succeeded),
            (S::Running, T::End(S::Failed), S::Failed),
            (S::Paused, T::End(S::Succeeded), S::Succeeded),
            (S::Paused, T::End(S::Failed), S::Failed),
            (S::Cancelled, T::End(S::Succeeded), S::Cancelled),
            (S::Cancelled, T::End(S::Failed), S::Cancelled),
            (S::Cancelled, T::End(S::Cancelled), S::Cancelled),
        ];
        let mut seen = 0;
        for from in ROLLOUT_STATES {
            for step in steps() {
                let want = allowed
                    .iter()
                    .find(|(f, s, _)| *f == from && *s == step)
                    .map(|e| e.2);
                seen += usize::from(want.is_some());
                assert_eq!(from.after(step).ok(), want, "{} + {step:?}", from.as_str());
                if want.is_none() {
                    assert_eq!(from.after(step), Err(Refused { from, step }));
                }
            }
        }
        assert_eq!(seen, allowed.len());
    }

    #[test]
    fn a_finished_rollout_never_moves() {
        for from in [S::Succeeded, S::Failed] {
            for step in steps() {
                assert!(from.after(step).is_err(), "{} + {step:?}", from.as_str());
            }
        }
        // Cancelled only ends (once: the store applies an ending step once per run).
        for step in steps() {
            let to = S::Cancelled.after(step);
            assert!(to.is_err() || (step.ends() && to == Ok(S::Cancelled)));
        }
    }

    #[test]
    fn the_refusal_names_both() {
        let e = S::Succeeded.after(T::Cancel).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a succeeded rollout cannot take the step Cancel (cancel)"
        );
    }

    #[test]
    fn edges_are_the_table() {
        assert_eq!(RolloutState::edges(T::Pause), vec![(S::Running, S::Paused)]);
        assert_eq!(RolloutState::edges(T::Cancel).len(), 4);
    }

    #[test]
    fn work_items_move_only_forward_or_back_to_pending() {
        use WorkState as W;
        let states = [W::Pending, W::Running, W::Succeeded, W::Failed, W::Skipped];
        let steps = [
            WorkStep::Claim,
            WorkStep::Release,
            WorkStep::Skip,
            WorkStep::Finish(W::Succeeded),
            WorkStep::Finish(W::Failed),
            WorkStep::Finish(W::Pending),
            WorkStep::Finish(W::Skipped),
            WorkStep::Finish(W::Running),
        ];
        for from in states {
            for step in steps {
                let to = from.after(step);
                let want = match (from, step) {
                    (W::Pending | W::Running, WorkStep::Claim) => Some(W::Running),
                    (W::Running, WorkStep::Release) => Some(W::Pending),
                    (W::Pending | W::Running, WorkStep::Skip) => Some(W::Skipped),
                    (W::Running, WorkStep::Finish(W::Succeeded)) => Some(W::Succeeded),
                    (W::Running, WorkStep::Finish(W::Skipped)) => Some(W::Skipped),
                    (W::Running, WorkStep::Finish(W::Failed)) => Some(W::Failed),
                    (W::Running, WorkStep::Finish(W::Pending)) => Some(W::Pending),
                    _ => None,
                };
                assert_eq!(to, want, "{} + {step:?}", from.as_str());
                // A finished item never moves.
                if from.is_done() {
                    assert_eq!(to, None);
                }
            }
        }
    }
}
