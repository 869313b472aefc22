//! A rollout as the control store keeps it: what it does, how far it got, who touched it.

use serde::{Deserialize, Serialize};

use super::{
    ApplyOptions, Direction, RollbackTarget, RolloutState, SetDigest, Strategy, TransactionMode,
};

/// What a rollout does on each tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutOp {
    /// Apply pending migrations.
    Apply(ApplyOptions),
    /// Roll back applied migrations.
    Rollback(RollbackTarget),
}

impl RolloutOp {
    /// `Up` for an apply, `Down` for a rollback.
    pub fn direction(&self) -> Direction {
        match self {
            Self::Apply(_) => Direction::Up,
            Self::Rollback(_) => Direction::Down,
        }
    }
}

/// Everything a rollout needs to run, or to resume after a restart (its tenants are kept
/// beside it, one [`TenantWork`] each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// The fleet.
    pub fleet: String,
    /// Apply or rollback, with its options.
    pub op: RolloutOp,
    /// Waves, concurrency, failure threshold, every field resolved.
    pub strategy: Strategy,
    /// One transaction per migration, or per tenant.
    pub transaction: TransactionMode,
    /// Plan only: no lock, no writes.
    pub dry_run: bool,
    /// The digest of the set the rollout started with; a resume refuses another set.
    pub set_digest: SetDigest,
    /// The caller accepts the data loss of destructive scripts: an apply's `up`s (also in
    /// its [`ApplyOptions`]) or a rollback's `down`s. Absent in rollouts stored before it.
    #[serde(default)]
    pub accept_data_loss: bool,
    /// Refuse (fail with `drifted`) each tenant whose schema is not the expected one for
    /// its version before anything runs on it (`apply --require-expected-schema`;
    /// docs/census.md). Absent in rollouts stored before it.
    #[serde(default)]
    pub require_expected_schema: bool,
}

/// Where one tenant of a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkState {
    /// Not started (or started by a daemon that stopped: its history decides what is left).
    Pending,
    /// Being migrated.
    Running,
    /// Finished: every planned step ran, or a dry run planned it.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Never started: the rollout stopped first.
    Skipped,
}

impl WorkState {
    /// Every state, in the order a tenant goes through them.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Skipped,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Parses [`WorkState::as_str`]'s spelling; anything else reads as `Pending`, so an
    /// unknown state is run again rather than lost (the tenant's history decides).
    pub fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            _ => Self::Pending,
        }
    }

    /// True once the tenant needs nothing more from this rollout.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

/// One tenant's work item in a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantWork {
    /// The tenant.
    pub tenant: String,
    /// Its place in the rollout's order, from 0.
    pub position: u32,
    /// Its wave, from 0.
    pub wave: u32,
    /// Where it is.
    pub state: WorkState,
    /// How many times a daemon started it.
    pub attempts: u32,
    /// Its last failure, for people.
    pub last_error: Option<String>,
}

/// One call that changed a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, Unix ms.
    pub at_unix_ms: i64,
    /// The RPC, e.g. `avocet.v1.Rollouts/Pause`.
    pub method: String,
    /// Who: an identity, or the peer address until authentication exists.
    pub caller: String,
}

/// A rollout as stored.
#[derive(Debug, Clone)]
pub struct RolloutRecord {
    /// Its id (a UUID).
    pub id: String,
    /// What it does.
    pub spec: RolloutSpec,
    /// Where it is.
    pub state: RolloutState,
    /// Who started it.
    pub created_by: String,
    /// When it was started, Unix ms.
    pub created_at_unix_ms: i64,
    /// When it reached a final state, Unix ms.
    pub finished_at_unix_ms: Option<i64>,
    /// Tenants selected.
    pub tenant_count: u32,
    /// Tenants that succeeded.
    pub succeeded: u32,
    /// Tenants that failed.
    pub failed: u32,
    /// Tenants that never started.
    pub skipped: u32,
    /// Steps that ran to completion, over all tenants.
    pub migrations_run: u32,
    /// Sequence number of the newest stored event.
    pub last_seq: u64,
    /// Waves the tenants run in.
    pub waves: u32,
    /// Every call that changed it, oldest first.
    pub audit: Vec<AuditEntry>,
}

impl RolloutRecord {
    /// Tenants not finished yet.
    pub fn pending(&self) -> u32 {
        self.tenant_count
            .saturating_sub(self.succeeded + self.failed + self.skipped)
    }
}
