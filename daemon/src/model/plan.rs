//! What a plan says for one tenant: the steps to run, and the findings about its history.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{DialectKind, Direction, Migration, Script};

/// One migration to run in one direction.
#[derive(Debug, Clone)]
pub struct Step {
    /// The migration.
    pub migration: Arc<Migration>,
    /// Which script runs.
    pub direction: Direction,
    /// For `down` steps, the batch the version was applied in (kept on its row).
    pub batch: Option<i64>,
    /// False when the script runs statement by statement outside a transaction.
    pub transactional: bool,
}

impl Step {
    /// A step of `migration` in `direction`; it is transactional when `dialect` has
    /// transactional DDL and the script carries no `no-transaction` marker.
    ///
    /// # Panics
    /// When `direction` is `Down` and the migration has no `down` script.
    pub fn new(migration: &Arc<Migration>, direction: Direction, dialect: DialectKind) -> Self {
        let mut step = Self {
            migration: migration.clone(),
            direction,
            batch: None,
            transactional: false,
        };
        step.transactional = dialect.transactional_ddl() && !step.script().no_transaction;
        step
    }

    /// The script this step runs. A `down` step is only planned when the migration has one.
    ///
    /// # Panics
    /// When `direction` is `Down` and the migration has no `down` script; the planner
    /// never builds such a step.
    pub fn script(&self) -> &Script {
        match self.direction {
            Direction::Up => &self.migration.up,
            Direction::Down => self
                .migration
                .down
                .as_ref()
                .expect("down steps are planned only for migrations with a down script"),
        }
    }
}

/// How a tenant's steps are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransactionMode {
    /// One transaction per migration (the default).
    #[default]
    Migration,
    /// All of a tenant's steps in one transaction: all or nothing. PostgreSQL and SQLite
    /// only, and only when every step is transactional.
    Tenant,
}

impl TransactionMode {
    /// `migration` or `tenant`, as in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Migration => "migration",
            Self::Tenant => "tenant",
        }
    }
}

/// What to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOptions {
    /// Highest version to apply; `None` for the latest.
    pub target: Option<super::Version>,
    /// Run pending versions older than the newest applied one instead of refusing.
    pub allow_out_of_order: bool,
    /// Run migrations with destructive statements even when their file does not say
    /// `-- avocet:allow-destructive`.
    pub accept_data_loss: bool,
}

/// What to roll back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// The newest N applied versions.
    Steps(u32),
    /// Every applied version above this one.
    ToVersion(super::Version),
    /// The versions of the most recent apply batch.
    LastBatch,
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Reported; the plan still runs.
    Warning,
    /// The tenant is blocked: nothing runs on it.
    Error,
}

/// Stable, machine-readable diagnostic codes (the `code` field of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// An applied migration's script changed since it ran (error).
    ChecksumMismatch,
    /// An applied migration's `down` script changed, or was removed, since the migration
    /// ran (warning: a rollback would run the file as it is now).
    DownChecksumMismatch,
    /// An applied version is not in the migration set (error).
    MissingMigration,
    /// A failed migration that left nothing behind; it is retried (warning).
    FailedMigration,
    /// A migration that failed outside a transaction, or a failed rollback: part of it may
    /// have run (error: repair).
    PartiallyApplied,
    /// A migration recorded `running`: its effect is unknown (error: repair).
    RunningMigration,
    /// A pending version older than the newest applied one (error unless allowed).
    OutOfOrder,
    /// The step runs outside a transaction (warning).
    NoTransaction,
    /// The step destroys data (the lint's destructive findings): a warning when accepted
    /// (`accept_data_loss`, or the file's `-- avocet:allow-destructive`), else an error.
    Destructive,
    /// A rollback needs a migration that has no `down` script (error).
    Irreversible,
    /// The tenant's database could not be read (error).
    Unreachable,
    /// A `${name}` placeholder has no value for the tenant, or one that cannot be written
    /// where it sits (error).
    Placeholder,
    /// A migration whose `up` script has no statement, only comments: a warning (real
    /// projects keep such files, a no-op on some database), silenced by the file's
    /// `-- avocet:allow-empty`; an error when the file is still the template `avocet new`
    /// wrote (`-- avocet:template`), which would be recorded as applied having done nothing.
    EmptyMigration,
}

impl Code {
    /// The snake_case spelling used in the API and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::DownChecksumMismatch => "down_checksum_mismatch",
            Self::MissingMigration => "missing_migration",
            Self::FailedMigration => "failed_migration",
            Self::PartiallyApplied => "partially_applied",
            Self::RunningMigration => "running_migration",
            Self::OutOfOrder => "out_of_order",
            Self::NoTransaction => "no_transaction",
            Self::Destructive => "destructive",
            Self::Irreversible => "irreversible",
            Self::Unreachable => "unreachable",
            Self::Placeholder => "placeholder",
            Self::EmptyMigration => "empty_migration",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Warning or error.
    pub severity: Severity,
    /// What kind of finding.
    pub code: Code,
    /// The version concerned, if one is.
    pub version: Option<super::MigrationKey>,
    /// A sentence for people, naming the version and what to do.
    pub message: String,
}

impl Diagnostic {
    /// The tenant could not be read; `cause` is the database error (never the DSN).
    pub fn unreachable(cause: &str) -> Self {
        Self {
            severity: Severity::Error,
            code: Code::Unreachable,
            version: None,
            message: format!("cannot read the tenant: {cause}"),
        }
    }
}

/// The plan for one tenant.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Highest applied version before the plan runs.
    pub current_version: Option<super::Version>,
    /// Steps in the order they run.
    pub steps: Vec<Step>,
    /// Warnings and errors; any error blocks the tenant.
    pub diagnostics: Vec<Diagnostic>,
}

impl Plan {
    /// A plan that runs nothing because the tenant could not be read.
    pub fn unreachable(cause: &str) -> Self {
        Self {
            diagnostics: vec![Diagnostic::unreachable(cause)],
            ..Self::default()
        }
    }

    /// True when an error diagnostic forbids running any step.
    pub fn blocked(&self) -> bool {
        self.first_error().is_some()
    }

    /// The first error diagnostic, if any.
    pub fn first_error(&self) -> Option<&Diagnostic> {
        self.diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
    }
}

/// A plan as events carry it: every step's identity and checksums, without script text (a
/// fleet's events would otherwise repeat each script once per tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    /// Highest applied version before the plan runs.
    pub current_version: Option<super::Version>,
    /// Steps in the order they run.
    pub steps: Vec<StepView>,
    /// Warnings and errors; any error blocks the tenant.
    pub diagnostics: Vec<Diagnostic>,
}

/// One step of a [`PlanView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// The migration's key.
    pub version: super::MigrationKey,
    /// The migration's name.
    pub name: String,
    /// Which script runs.
    pub direction: Direction,
    /// The migration's checksum (its `up` script's).
    pub checksum: String,
    /// The checksum of the script this step runs (`up` or `down`).
    pub script_checksum: String,
    /// False when the script runs statement by statement outside a transaction.
    pub transactional: bool,
    /// Statements in the script.
    pub statements: u32,
}

impl PlanView {
    /// True when an error diagnostic forbids running any step.
    pub fn blocked(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

impl From<&Plan> for PlanView {
    fn from(plan: &Plan) -> Self {
        Self {
            current_version: plan.current_version,
            steps: plan
                .steps
                .iter()
                .map(|s| StepView {
                    version: s.migration.version.clone(),
                    name: s.migration.name.clone(),
                    direction: s.direction,
                    checksum: s.migration.up.checksum.clone(),
                    script_checksum: s.script().checksum.clone(),
                    transactional: s.transactional,
                    statements: s.script().statement_count() as u32,
                })
                .collect(),
            diagnostics: plan.diagnostics.clone(),
        }
    }
}
