//! Planning: a migration set and one tenant's history in, the steps to run and the warnings
//! and errors out. Pure: no I/O, no clock, so every rule here is tested directly.
//!
//! The checks follow DESIGN.md rule 4: a changed applied script, an applied version missing
//! from the set, a `failed` or `running` record and an out-of-order pending version each get
//! their own [`Code`], never a silent skip.

mod diagnostics;

use std::{collections::HashMap, sync::Arc};

pub use diagnostics::{Code, Diagnostic, Severity};

pub use crate::catalog::Direction;

use crate::{
    catalog::{Migration, MigrationSet, Script},
    dialect::{DialectKind, HistoryRecord, RecordStatus},
};

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
    fn new(migration: &Arc<Migration>, direction: Direction, dialect: DialectKind) -> Self {
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

/// What to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Highest version to apply; `None` for the latest.
    pub target: Option<i64>,
    /// Run pending versions older than the newest applied one instead of refusing.
    pub allow_out_of_order: bool,
}

/// What to roll back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackTarget {
    /// The newest N applied versions.
    Steps(u32),
    /// Every applied version above this one.
    ToVersion(i64),
    /// The versions of the most recent apply batch.
    LastBatch,
}

/// The plan for one tenant.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Highest applied version before the plan runs.
    pub current_version: Option<i64>,
    /// Steps in the order they run.
    pub steps: Vec<Step>,
    /// Warnings and errors; any error blocks the tenant.
    pub diagnostics: Vec<Diagnostic>,
}

impl Plan {
    /// True when an error diagnostic forbids running any step.
    pub fn blocked(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The first error diagnostic, if any.
    pub fn first_error(&self) -> Option<&Diagnostic> {
        self.diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
    }
}

/// Highest version whose record is `applied`.
pub fn current_version(history: &[HistoryRecord]) -> Option<i64> {
    history
        .iter()
        .filter(|r| r.status == RecordStatus::Applied)
        .map(|r| r.version)
        .max()
}

/// Versions of the set (up to `target`) not applied on the tenant.
pub fn pending<'a>(
    set: &'a MigrationSet,
    history: &[HistoryRecord],
    target: Option<i64>,
) -> impl Iterator<Item = &'a Arc<Migration>> {
    let applied: HashMap<i64, RecordStatus> =
        history.iter().map(|r| (r.version, r.status)).collect();
    set.iter().filter(move |m| {
        target.is_none_or(|t| m.version <= t)
            && applied.get(&m.version) != Some(&RecordStatus::Applied)
    })
}

/// Compares the history with the set: drift, missing versions, failed and running records.
///
/// A `failed` record is retried (a warning) only when it cannot have left anything behind:
/// an `up` that ran in a transaction (`dialect` has transactional DDL and the script has no
/// `no-transaction` marker). Any other `failed` record, like a `running` one, is an error
/// until repaired.
pub fn check_history(
    set: &MigrationSet,
    history: &[HistoryRecord],
    dialect: DialectKind,
) -> Vec<Diagnostic> {
    let retryable = |r: &HistoryRecord| {
        r.direction == Direction::Up
            && r.statements_done == 0
            && dialect.transactional_ddl()
            && set.get(r.version).is_some_and(|m| !m.up.no_transaction)
    };
    history
        .iter()
        .filter_map(|r| match r.status {
            RecordStatus::Applied => match set.get(r.version) {
                None => Some(Diagnostic::missing(r)),
                Some(m) if m.up.checksum != r.checksum => Some(Diagnostic::drift(r, m)),
                Some(_) => None,
            },
            RecordStatus::Running => Some(Diagnostic::running(r)),
            RecordStatus::Failed if retryable(r) => Some(Diagnostic::failed(r)),
            RecordStatus::Failed => Some(Diagnostic::partial(r)),
            RecordStatus::RolledBack => None,
        })
        .collect()
}

/// Plans an apply: every pending version up to the target, ascending.
///
/// See [`check_history`] for which `failed` records are retried and which block.
pub fn plan_apply(
    set: &MigrationSet,
    history: &[HistoryRecord],
    opts: ApplyOptions,
    dialect: DialectKind,
) -> Plan {
    let current = current_version(history);
    let mut diagnostics = check_history(set, history, dialect);
    let steps: Vec<Step> = pending(set, history, opts.target)
        .map(|m| Step::new(m, Direction::Up, dialect))
        .collect();
    for step in &steps {
        let m = &step.migration;
        if current.is_some_and(|c| m.version < c) {
            diagnostics.push(Diagnostic::out_of_order(
                m,
                current,
                opts.allow_out_of_order,
            ));
        }
        if step.script().no_transaction {
            diagnostics.push(Diagnostic::no_transaction(m));
        }
        if step.script().destructive {
            diagnostics.push(Diagnostic::destructive(m));
        }
    }
    Plan {
        current_version: current,
        steps,
        diagnostics,
    }
}

/// Plans a rollback: applied versions chosen by `target`, newest first. A chosen version
/// without a `down` script is an [`Code::Irreversible`] error, so nothing runs.
pub fn plan_rollback(
    set: &MigrationSet,
    history: &[HistoryRecord],
    target: RollbackTarget,
    dialect: DialectKind,
) -> Plan {
    let mut diagnostics = check_history(set, history, dialect);
    let mut applied: Vec<&HistoryRecord> = history
        .iter()
        .filter(|r| r.status == RecordStatus::Applied)
        .collect();
    applied.sort_by_key(|r| std::cmp::Reverse(r.version));
    let last_batch = applied.iter().map(|r| r.batch).max();
    let chosen: Vec<&HistoryRecord> = match target {
        RollbackTarget::Steps(n) => applied.into_iter().take(n as usize).collect(),
        RollbackTarget::ToVersion(v) => applied.into_iter().filter(|r| r.version > v).collect(),
        RollbackTarget::LastBatch => applied
            .into_iter()
            .filter(|r| Some(r.batch) == last_batch)
            .collect(),
    };
    let mut steps = Vec::with_capacity(chosen.len());
    for record in chosen {
        // A version missing from the set already has its error from check_history.
        let Some(m) = set.get(record.version) else {
            continue;
        };
        if m.down.is_none() {
            diagnostics.push(Diagnostic::irreversible(m));
            continue;
        }
        let mut step = Step::new(m, Direction::Down, dialect);
        step.batch = Some(record.batch);
        if step.script().no_transaction {
            diagnostics.push(Diagnostic::no_transaction(m));
        }
        steps.push(step);
    }
    Plan {
        current_version: current_version(history),
        steps,
        diagnostics,
    }
}

#[cfg(test)]
mod tests;
