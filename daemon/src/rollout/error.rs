//! Why a rollout could not be started or changed.

use crate::{fleet::FleetError, store::StoreError};

/// Why a rollout could not be started or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// No rollout has that id.
    #[error("rollout {0:?} not found")]
    NotFound(String),
    /// The rollout's state does not allow the action (the state table refused it).
    #[error("rollout {id} is {state}: it cannot be {action}")]
    State {
        /// The rollout.
        id: String,
        /// Its state.
        state: &'static str,
        /// What was asked (`paused`, `resumed`, `cancelled`).
        action: &'static str,
    },
    /// Tenants of the rollout need `avocet repair` before it can be resumed.
    #[error(
        "rollout {id}: tenant(s) {} have a migration recorded as running by a daemon that \
         stopped; repair them (avocet repair --tenant ID), then resume",
        tenants.join(", ")
    )]
    NeedsRepair {
        /// The rollout.
        id: String,
        /// The tenants to repair.
        tenants: Vec<String>,
    },
    /// The fleet's set changed since the rollout started; resuming would run other SQL.
    #[error(
        "rollout {id}: the migration set changed since it started (digest {started} then, \
         {now} now): start a new rollout"
    )]
    SetChanged {
        /// The rollout.
        id: String,
        /// The set's digest when it started.
        started: String,
        /// The set's digest now.
        now: String,
    },
    /// The fleet is gone or its set does not load.
    #[error("rollout {id}: {source}")]
    Fleet {
        /// The rollout.
        id: String,
        /// Why (boxed: the error stays small on every other path).
        source: Box<FleetError>,
    },
    /// The control store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
