//! What a rollout reports as it runs: an ordered log of events per rollout.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Direction, MigrationKey, PlanView, RecordStatus, RolloutState, Strategy, Version};

/// One progress event of a rollout. `seq` starts at 1 and has no gaps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutEvent {
    /// The rollout's id (a UUID).
    pub rollout_id: String,
    /// Position in the rollout's log, from 1.
    pub seq: u64,
    /// When it happened, Unix epoch milliseconds.
    pub at_unix_ms: i64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The first event of every rollout.
    RolloutStarted(RolloutStarted),
    /// A tenant's work began (its lock is being taken).
    TenantStarted {
        /// The tenant.
        tenant: String,
    },
    /// A migration step began on a tenant.
    MigrationStarted(MigrationStarted),
    /// A migration step ended on a tenant.
    MigrationFinished(MigrationFinished),
    /// A migration's statement gave up waiting for a lock; the migration runs again after
    /// a backoff (DESIGN.md rule 7).
    LockRetry(LockRetry),
    /// A tenant was backed up before a risky migration (its fleet's backup policy).
    BackupTaken(BackupTaken),
    /// A tenant's work ended.
    TenantFinished(TenantFinished),
    /// After its apply or rollback, a tenant's schema differs from the one the first tenant
    /// to reach its version had (`census_on_apply`; docs/census.md). A warning: the tenant
    /// succeeded.
    SchemaDrift(SchemaDrift),
    /// The last event of every rollout.
    RolloutFinished(RolloutSummary),
    /// A wave began.
    WaveStarted {
        /// From 0; a canary wave is wave 0.
        index: u32,
        /// True for the canary wave.
        canary: bool,
        /// Tenants in the wave.
        tenant_count: u32,
    },
    /// The rollout was paused, resumed, cancelled or interrupted.
    StateChanged {
        /// The new state.
        state: RolloutState,
        /// Who asked (a caller), or `avocetd` for the daemon itself.
        by: String,
        /// Why, for people.
        reason: String,
    },
}

/// A tenant's backup, taken right before the migration it precedes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupTaken {
    /// The tenant.
    pub tenant: String,
    /// The backup's id (`avocet restore --backup ID`).
    pub backup_id: String,
    /// The tenant's version in the backup; `None` when nothing was applied (stored events
    /// of earlier releases wrote its text, empty for none: both are read).
    #[serde(with = "text_version")]
    pub version: Option<Version>,
    /// The migration it precedes.
    pub before: MigrationKey,
    /// The file's size, bytes.
    pub bytes: u64,
    /// The file's SHA-256, lowercase hex.
    pub sha256: String,
    /// How long the tool ran, ms.
    pub duration_ms: u64,
}

/// A rollout began.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutStarted {
    /// The fleet.
    pub fleet: String,
    /// Apply (`Up`) or rollback (`Down`).
    pub direction: Direction,
    /// Tenants selected.
    pub tenant_count: u32,
    /// Tenants run at once.
    pub concurrency: u32,
    /// Plan only; nothing is changed.
    pub dry_run: bool,
    /// The strategy in force.
    pub strategy: Strategy,
    /// Waves the tenants run in.
    pub waves: u32,
}

/// A migration step began.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationStarted {
    /// The tenant.
    pub tenant: String,
    /// The migration's key.
    pub version: MigrationKey,
    /// The migration's name.
    pub name: String,
    /// Which script runs.
    pub direction: Direction,
    /// False when the script runs statement by statement outside a transaction.
    pub transactional: bool,
}

/// A migration step ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationFinished {
    /// The tenant.
    pub tenant: String,
    /// The migration's key.
    pub version: MigrationKey,
    /// The migration's name.
    pub name: String,
    /// `Applied`, `RolledBack` or `Failed`.
    pub status: RecordStatus,
    /// Wall time of the step, ms.
    pub duration_ms: u64,
    /// Statements that completed.
    pub statements_done: u32,
    /// Statements in the script.
    pub statements_total: u32,
    /// The database's error, for `Failed`.
    pub error: Option<String>,
}

/// A migration's statement waited its `ddl_lock_timeout` for a lock and gave up, leaving
/// the lock queue; the migration (rolled back where transactional) runs again after `wait_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockRetry {
    /// The tenant.
    pub tenant: String,
    /// The migration's key.
    pub version: MigrationKey,
    /// The statement that gave up, 1-based.
    pub statement: u32,
    /// This retry, from 1.
    pub attempt: u32,
    /// The wait before it, ms.
    pub wait_ms: u64,
    /// The sessions holding locks or open transactions in the tenant's database then, as the
    /// server lists them (process ids, states, how long); empty when it cannot say.
    pub holders: String,
    /// What else happened, for people (an invalid index dropped before the retry).
    pub note: String,
}

/// A tenant's schema right after its migrations differs from the expected one recorded
/// for its version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaDrift {
    /// The tenant.
    pub tenant: String,
    /// Its version after the run; `None` when nothing is applied.
    pub version: Option<Version>,
    /// The fingerprint recorded for the version (hex SHA-256).
    pub expected: String,
    /// The tenant's.
    pub found: String,
    /// The tenant that set the expected fingerprint.
    pub expected_from: String,
    /// What differs from the expected model, at most [`SchemaDrift::MAX_CHANGES`] lines.
    pub diff: Vec<super::SchemaChange>,
}

impl SchemaDrift {
    /// Lines of diff an event carries at most.
    pub const MAX_CHANGES: usize = 20;
}

/// How a tenant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantOutcome {
    /// Every planned step ran (or there was nothing to run).
    Succeeded,
    /// A step failed, the tenant was blocked, unreachable or its lock did not come.
    Failed,
    /// Not started: the rollout stopped before reaching it.
    Skipped,
    /// Dry run: the plan says what would run.
    Planned,
}

impl TenantOutcome {
    /// `succeeded`, `failed`, `skipped` or `planned`, as in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Planned => "planned",
        }
    }
}

/// Stable code of a tenant failure (the `code` of the API's `TenantError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// Another session held the tenant lock past `lock_timeout`.
    LockTimeout,
    /// The tenant lock was lost while a migration ran; the migration stopped before its
    /// next statement (rolled back where transactional).
    LockLost,
    /// The database could not be reached or its target is unusable.
    Unreachable,
    /// An error diagnostic of the plan stopped the tenant before anything ran.
    Blocked,
    /// A migration's script failed; its record says what is left.
    MigrationFailed,
    /// The history table could not be read or written.
    History,
    /// The daemon shut down before the tenant finished.
    Cancelled,
    /// The backup the fleet's policy takes before a risky migration failed; the migration
    /// did not run.
    BackupFailed,
    /// `--require-expected-schema`: the tenant's schema is not the expected one for its
    /// version; nothing ran.
    Drifted,
    /// A bug in the engine.
    Internal,
}

impl FailureCode {
    /// The snake_case spelling used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LockTimeout => "lock_timeout",
            Self::LockLost => "lock_lost",
            Self::Unreachable => "unreachable",
            Self::Blocked => "blocked",
            Self::MigrationFailed => "migration_failed",
            Self::History => "history",
            Self::Cancelled => "cancelled",
            Self::BackupFailed => "backup_failed",
            Self::Drifted => "drifted",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a tenant failed: a stable code, the version if one is concerned, and a sentence that
/// names the tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantFailure {
    /// What kind of failure.
    pub code: FailureCode,
    /// The migration concerned, if one is.
    pub version: Option<MigrationKey>,
    /// A sentence for people.
    pub message: String,
}

/// A tenant's work ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantFinished {
    /// The tenant.
    pub tenant: String,
    /// How it ended.
    pub outcome: TenantOutcome,
    /// Steps that ran to completion.
    pub migrations_run: u32,
    /// Wall time of the tenant, ms.
    pub duration_ms: u64,
    /// Highest applied version afterwards, when known.
    pub current_version: Option<Version>,
    /// Set when `outcome` is `Failed`.
    pub error: Option<TenantFailure>,
    /// Set on dry runs and when a tenant is blocked by its plan (without script text).
    pub plan: Option<PlanView>,
}

/// The totals of a finished rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutSummary {
    /// Tenants that succeeded (or were planned, on a dry run).
    pub succeeded: u32,
    /// Tenants that failed.
    pub failed: u32,
    /// Tenants not started.
    pub skipped: u32,
    /// Steps that ran to completion, over all tenants.
    pub migrations_run: u32,
    /// Wall time of the rollout, ms (this run of it, after a resume).
    pub duration_ms: u64,
    /// `Succeeded`, `Failed`, `Cancelled` or `Interrupted`.
    pub state: RolloutState,
    /// Why it ended so, when the state alone does not say (a canary wave that ran nothing,
    /// a control store that stayed away); empty otherwise. Absent in events stored before
    /// it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Default for RolloutSummary {
    fn default() -> Self {
        Self {
            succeeded: 0,
            failed: 0,
            skipped: 0,
            migrations_run: 0,
            duration_ms: 0,
            state: RolloutState::Succeeded,
            reason: String::new(),
        }
    }
}

impl RolloutSummary {
    /// Counts one finished tenant.
    pub fn count(&mut self, tenant: &TenantFinished) {
        self.migrations_run += tenant.migrations_run;
        match tenant.outcome {
            TenantOutcome::Failed => self.failed += 1,
            TenantOutcome::Skipped => self.skipped += 1,
            TenantOutcome::Succeeded | TenantOutcome::Planned => self.succeeded += 1,
        }
    }
}

/// [`BackupTaken::version`] stored as its text, empty for none: what every release wrote
/// (when it was a `String`), so replicas of either reading the other's events agree.
mod text_version {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Version;

    pub(super) fn serialize<S: Serializer>(v: &Option<Version>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Version>, D::Error> {
        match String::deserialize(d)?.as_str() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_events_version_is_stored_as_the_text_every_release_wrote() {
        let taken = |version: Option<Version>| BackupTaken {
            tenant: "t00".into(),
            backup_id: "b".into(),
            version,
            before: MigrationKey::from(2),
            bytes: 1,
            sha256: String::new(),
            duration_ms: 0,
        };
        let json = serde_json::to_value(taken(Some("1.2".parse().unwrap()))).unwrap();
        assert_eq!(
            (&json["version"], &json["before"]),
            (&"1.2".into(), &2.into())
        );
        let none = serde_json::to_value(taken(None)).unwrap();
        assert_eq!(none["version"], "");
        let back: BackupTaken = serde_json::from_value(none).unwrap();
        assert_eq!(back.version, None);
        let back: BackupTaken = serde_json::from_value(json).unwrap();
        assert_eq!(back.version, Some("1.2".parse().unwrap()));
    }
}
