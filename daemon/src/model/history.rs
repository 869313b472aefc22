//! What a tenant's history table says: one record per version.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};

use super::Direction;

/// State of one version in a tenant's history table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Started outside a transaction and not finished: after a crash its effect is unknown.
    Running,
    /// Applied and committed.
    Applied,
    /// Failed; `statements_done` says how much of a non-transactional script ran.
    Failed,
    /// Its `down` script ran; the version is pending again.
    RolledBack,
}

impl RecordStatus {
    /// The spelling stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// True for `failed` and `running`: records that need a retry or a repair.
    pub fn needs_attention(self) -> bool {
        matches!(self, Self::Failed | Self::Running)
    }
}

impl fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordStatus {
    type Err = String;

    /// Parses the `status` column's spelling.
    ///
    /// # Errors
    /// A sentence naming the unknown value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "applied" => Ok(Self::Applied),
            "failed" => Ok(Self::Failed),
            "rolled_back" => Ok(Self::RolledBack),
            other => Err(format!("unknown history status {other:?}")),
        }
    }
}

/// One row of the history table, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// Migration key (a version, or a repeatable's `R__<description>`).
    pub version: super::MigrationKey,
    /// Migration name when it was recorded.
    pub name: String,
    /// Hex SHA-256 of the `up` script that ran.
    pub checksum: String,
    /// Hex SHA-256 of the migration's `down` script when the record was written; `None`
    /// when the migration had none, or the record is older than the `down_checksum` column.
    pub down_checksum: Option<String>,
    /// Current state.
    pub status: RecordStatus,
    /// The apply run that applied it; one number per run, ascending.
    pub batch: i64,
    /// Statements finished (non-transactional scripts; 0 after a rolled-back transaction).
    pub statements_done: i64,
    /// Statements in the script.
    pub statements_total: i64,
    /// The failure, for `failed` rows.
    pub error: Option<String>,
    /// Which script made the last change: a `failed` row from a `down` is a half-done
    /// rollback, never an `up` to retry.
    pub direction: Direction,
    /// Whether that script ran statement by statement outside a transaction (its
    /// `no-transaction` marker); `None` for a record older than the `no_transaction`
    /// column. It tells what a `failed` record may have left behind once its file is gone.
    pub no_transaction: Option<bool>,
}

impl HistoryRecord {
    /// True when the `up` script in `m` is not the one this record says ran.
    pub fn up_drifted(&self, m: &super::Migration) -> bool {
        self.checksum != m.up.checksum
    }

    /// True when `m`'s `up` script changed since this record and that is drift, an error:
    /// `m` is a numbered migration. An edited repeatable runs again instead
    /// ([`Self::rerun_due`]).
    pub fn drifted(&self, m: &super::Migration) -> bool {
        self.up_drifted(m) && !m.version.is_repeatable()
    }

    /// True when `m` is a repeatable whose file changed since this record: it is pending
    /// again (Flyway re-applies a repeatable "every time its checksum changes").
    pub fn rerun_due(&self, m: &super::Migration) -> bool {
        m.version.is_repeatable() && self.up_drifted(m)
    }

    /// True when the record knows the `down` script's checksum and `m`'s `down` script
    /// differs from it or is gone. A record without one (the migration had no `down`
    /// script, or the record predates the column) never drifts.
    pub fn down_drifted(&self, m: &super::Migration) -> bool {
        self.down_checksum
            .as_deref()
            .is_some_and(|c| m.down.as_ref().map(|d| d.checksum.as_str()) != Some(c))
    }
}

/// A full history row to insert or replace, plus what the log row needs.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    /// Migration key (the primary key).
    pub version: super::MigrationKey,
    /// Migration name.
    pub name: String,
    /// Hex SHA-256 of the `up` script.
    pub checksum: String,
    /// Hex SHA-256 of the `down` script, when the migration has one.
    pub down_checksum: Option<String>,
    /// New state.
    pub status: RecordStatus,
    /// Apply run number.
    pub batch: i64,
    /// Rollout that made the change (or `repair`).
    pub rollout_id: String,
    /// Daemon instance that made the change.
    pub applied_by: String,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// When the step ended; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time of the step in milliseconds; `None` while running.
    pub duration_ms: Option<i64>,
    /// The failure, for `failed` rows.
    pub error: Option<String>,
    /// Statements finished.
    pub statements_done: i64,
    /// Statements in the script.
    pub statements_total: i64,
    /// When the `down` script finished, for `rolled_back` rows.
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// Which script made the change.
    pub direction: Direction,
    /// True when that script runs statement by statement outside a transaction.
    pub no_transaction: bool,
    /// The word a log-only entry writes in the log row's `status` in place of `status`
    /// (`restored`: a backup was restored, the history row is the backup's); `None` for
    /// every change of a history row, whose log row says its new status.
    pub log_status: Option<&'static str>,
}

impl RecordWrite {
    /// The one way a record of migration `m` is made: in `status`, by `direction`'s script
    /// (whose statement count is the total, none done yet), in `batch`, for `rollout_id`
    /// (or `baseline`, `adopt`, `repair`) by `applied_by`, started at `started_at`.
    /// Finished now (the duration measured from `started_at`) unless `running`; rolled back
    /// now when `rolled_back`. The finish and duration of a record written inside a batch
    /// after its script are the server's instead (`dialect::Timing::InBatch`).
    pub fn new(
        m: &super::Migration,
        status: RecordStatus,
        direction: Direction,
        batch: i64,
        (rollout_id, applied_by): (&str, &str),
        started_at: DateTime<Utc>,
    ) -> Self {
        let finished = (status != RecordStatus::Running).then(Utc::now);
        let script = match direction {
            Direction::Down => m.down.as_ref().unwrap_or(&m.up),
            Direction::Up => &m.up,
        };
        Self {
            version: m.version.clone(),
            name: m.name.clone(),
            checksum: m.up.checksum.clone(),
            down_checksum: m.down.as_ref().map(|d| d.checksum.clone()),
            status,
            batch,
            rollout_id: rollout_id.to_owned(),
            applied_by: applied_by.to_owned(),
            started_at,
            finished_at: finished,
            duration_ms: finished.map(|f| (f - started_at).num_milliseconds().max(0)),
            error: None,
            statements_done: 0,
            statements_total: script.statement_count() as i64,
            rolled_back_at: (status == RecordStatus::RolledBack).then(Utc::now),
            direction,
            no_transaction: script.no_transaction,
            log_status: None,
        }
    }

    /// The same record with `done` statements finished and `error`.
    pub fn with_progress(mut self, done: i64, error: Option<String>) -> Self {
        self.statements_done = done;
        self.error = error;
        self
    }
}

/// What a repair records about one version of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairAction {
    /// A `failed` or `running` record: the operator finished the migration by hand.
    MarkApplied,
    /// A `failed` or `running` record: the operator undid it, so it runs again.
    MarkRolledBack,
    /// An applied record whose file was edited on purpose: take the file's new checksum.
    AcceptChecksum,
    /// A record whose file is gone from the set on purpose: it stops counting as applied.
    Forget,
}

/// What a baseline records as applied on a tenant with no history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineSource {
    /// Every version of the set up to this one.
    UpTo(super::Version),
    /// The versions another tool's own history table says are applied there (adoption):
    /// `_sqlx_migrations`, `__diesel_schema_migrations`, `schema_migrations`
    /// (golang-migrate, dbmate), `flyway_schema_history` or `refinery_schema_history`.
    Adopt(super::SetFormat),
}
