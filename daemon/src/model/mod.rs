//! The domain's own types: what a migration, a history record, a plan and a rollout event
//! are. A leaf: no I/O, no sqlx, no protobuf, and nothing else of this crate, so every other
//! layer can share these words without depending on each other.
//!
//! | file | types |
//! | --- | --- |
//! | `backup.rs` | [`BackupWhen`], [`BackupOnFailure`], a backup as recorded ([`BackupRecord`], [`BackupState`]) |
//! | `dialect.rs` | [`DialectKind`] and its capabilities |
//! | `foreign.rs` | another tool's history rows ([`ForeignRow`]) and its checksums, for adopting its databases |
//! | `format.rs` | [`SetFormat`]: the on-disk layouts a set may come in |
//! | `guard.rs` | [`LockGuard`]: how long a statement may wait for a lock, and the retries |
//! | `migration.rs` | [`Direction`], [`Script`], [`Migration`], [`SetDigest`] |
//! | `set.rs` | [`MigrationSet`] and its tool's [`VersionOrder`], Flyway's baseline migrations |
//! | `lint.rs` | [`Finding`]s of the lint: [`LintCode`], [`LintKind`] |
//! | `labels.rs` | [`Labels`] of a tenant |
//! | `redact.rs` | [`redact_secrets`]: DSN passwords out of text; [`holds_password`] |
//! | `quote.rs` | [`bound_quotes`]: at most [`MAX_QUOTED`] bytes of any one quoted input in a message |
//! | `placeholder.rs` | `${name}` placeholders: [`Placeholder`], [`PlaceholderContext`], [`PlaceholderError`] |
//! | `names.rs` | what a valid id, identifier and label is ([`check_id`], …) |
//! | `history.rs` | [`BaselineSource`], [`HistoryRecord`], [`RecordStatus`], [`RecordWrite`], [`RepairAction`] |
//! | `plan.rs` | [`Step`], [`Plan`] and its [`PlanView`], [`Diagnostic`], [`Code`], [`Severity`], [`ApplyOptions`], [`RollbackTarget`], [`TransactionMode`] |
//! | `event.rs` | [`RolloutEvent`] and its [`EventKind`]s, [`TenantOutcome`], [`TenantFailure`], [`FailureCode`] |
//! | `strategy.rs` | [`Strategy`], [`StrategyRequest`], [`Amount`], [`RolloutState`] |
//! | `lifecycle.rs` | the state machines: [`RolloutStep`]s of a [`RolloutState`], [`WorkStep`]s of a [`WorkState`], [`Refused`] |
//! | `rollout.rs` | a rollout as stored: [`RolloutRecord`], its [`RolloutSpec`], [`TenantWork`], [`AuditEntry`] |
//! | `version.rs` | [`Version`]: an integer or Flyway's dotted version, and their order |
//! | `key.rs` | [`MigrationKey`]: a migration's key, a [`Version`] or a Flyway repeatable's description, and their order; [`Keyed`] |
//! | `known.rs` | a tenant's last-known state ([`KnownState`], [`Applied`]) and its one classification against a set: [`classify`], [`TenantClass`], [`Tally`] |
//! | `schema.rs` | a tenant's schema as one canonical model: [`SchemaModel`], its fingerprint ([`FingerprintOptions`]) |
//! | `schema_diff.rs` | [`diff_schemas`]: two models compared as [`SchemaChange`]s |
//! | `observe.rs` | what a metrics scrape reports: [`Observation`], [`FleetHealth`], [`BudgetUse`] |

mod backup;
mod dialect;
mod event;
mod foreign;
mod format;
mod guard;
mod history;
mod key;
pub(crate) mod known;
mod labels;
mod lifecycle;
mod lint;
mod migration;
mod names;
mod observe;
mod placeholder;
mod plan;
mod quote;
mod redact;
mod rollout;
mod schema;
mod schema_diff;
#[cfg(test)]
mod schema_tests;
mod set;
mod strategy;
mod version;

pub use backup::{BackupOnFailure, BackupRecord, BackupState, BackupWhen};
pub use dialect::{Capabilities, DialectKind};
pub use event::{
    BackupTaken, EventKind, FailureCode, LockRetry, MigrationFinished, MigrationStarted,
    RolloutEvent, RolloutStarted, RolloutSummary, SchemaDrift, TenantFailure, TenantFinished,
    TenantOutcome,
};
pub use foreign::{ForeignRow, flyway_checksum, refinery_checksum, sqlx_checksum};
pub use format::SetFormat;
pub use guard::LockGuard;
pub use history::{BaselineSource, HistoryRecord, RecordStatus, RecordWrite, RepairAction};
pub(crate) use key::flyway_description;
pub use key::{Keyed, MAX_REPEATABLE_KEY_BYTES, MigrationKey, REPEATABLE_PREFIX};
pub use known::{Applied, Classification, KnownState, Tally, TenantClass, classify};
pub use labels::Labels;
pub use lifecycle::{ROLLOUT_STATES, Refused, RolloutStep, WorkStep};
pub use lint::{Finding, LintCode, LintKind, LintPolicy, LintSeverity};
pub use migration::{
    DEFAULT_MAX_MIGRATION_BYTES, Direction, DuplicateVersion, Migration, Script, SetDigest,
    StatementSpan,
};
pub use names::{check_id, check_identifier, check_label};
pub use observe::{BudgetUse, FleetHealth, Observation, RolloutCount, WorkCount};
pub use placeholder::{
    BUILTIN_PLACEHOLDERS, Placeholder, PlaceholderContext, PlaceholderError, is_placeholder_name,
};
pub use plan::{
    ApplyOptions, Code, Diagnostic, Plan, PlanView, RollbackTarget, Severity, Step, StepView,
    TransactionMode,
};
pub use quote::{MAX_QUOTED, bound_quotes};
pub use redact::{bounded, holds_password, redact_secrets};
pub use rollout::{AuditEntry, RolloutOp, RolloutRecord, RolloutSpec, TenantWork, WorkState};
pub use schema::{
    Column, Constraint, ConstraintKind, FingerprintOptions, Index, SchemaModel, Sequence, Table,
    View, hash_text, squash,
};
pub use schema_diff::{SchemaChange, diff_schemas};
pub use set::{MigrationSet, VersionOrder};
pub use strategy::{Amount, RolloutState, Strategy, StrategyRequest};
pub use version::{MAX_VERSION_PARTS, Version, VersionError};
