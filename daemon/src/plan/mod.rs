//! Planning: a migration set and one tenant's history in, the steps to run and the warnings
//! and errors out. Pure: no I/O, no clock, so every rule here is tested directly.
//!
//! The checks follow DESIGN.md rule 4: a changed applied script, an applied version missing
//! from the set, a `failed` or `running` record and an out-of-order pending version each get
//! their own [`Code`](crate::model::Code), never a silent skip.

mod adopt;
mod diagnostics;
mod waves;

pub(crate) use adopt::{AdoptRefusal, adoption};
pub(crate) use waves::waves;

use std::{collections::HashMap, sync::Arc};

use crate::model::{
    ApplyOptions, DialectKind, Direction, HistoryRecord, Migration, MigrationSet, Plan,
    RecordStatus, RollbackTarget, Step, Version,
};
use diagnostics as diag;

/// Highest numbered version whose record is `applied` (a repeatable is never current).
pub(crate) fn current_version(history: &[HistoryRecord]) -> Option<Version> {
    history
        .iter()
        .filter(|r| r.status == RecordStatus::Applied && !r.version.is_repeatable())
        .map(|r| r.version)
        .max()
}

/// Migrations of the set (up to `target`) not applied on the tenant, ascending: numbered
/// versions without an `applied` record, then repeatables whose file's checksum is not the
/// one their record says ran (Flyway re-applies a repeatable "every time its checksum
/// changes"). A target names a numbered version, so an apply to one runs no repeatable:
/// they are written against the latest schema.
pub(crate) fn pending<'a>(
    set: &'a MigrationSet,
    history: &[HistoryRecord],
    target: Option<Version>,
) -> impl Iterator<Item = &'a Arc<Migration>> {
    let applied: HashMap<Version, &HistoryRecord> = history
        .iter()
        .filter(|r| r.status == RecordStatus::Applied)
        .map(|r| (r.version, r))
        .collect();
    set.iter().filter(move |m| {
        target.is_none_or(|t| m.version <= t)
            && applied.get(&m.version).is_none_or(|r| r.rerun_due(m))
    })
}

/// Compares the history with the set: drift, missing versions, failed and running records.
///
/// Drift of an applied record's `up` script is an error, except for a repeatable, which
/// runs again ([`pending`]); drift of its `down` script (edited or removed since the record
/// was written) is a warning, since nothing has run it yet: a rollback would run the file
/// as it is now.
///
/// A `failed` record is retried (a warning) only when it cannot have left anything behind:
/// an `up` that ran in a transaction (`dialect` has transactional DDL and the script has no
/// `no-transaction` marker). Any other `failed` record, like a `running` one, is an error
/// until repaired.
pub(crate) fn check_history(
    set: &MigrationSet,
    history: &[HistoryRecord],
    dialect: DialectKind,
) -> Vec<crate::model::Diagnostic> {
    let retryable = |r: &HistoryRecord| {
        r.direction == Direction::Up
            && r.statements_done == 0
            && dialect.transactional_ddl()
            && set.get(r.version).is_some_and(|m| !m.up.no_transaction)
    };
    let mut found = Vec::new();
    for r in history {
        match r.status {
            RecordStatus::Applied => match set.get(r.version) {
                None => found.push(diag::missing(r)),
                Some(m) => {
                    if r.drifted(m) {
                        found.push(diag::drift(r, m));
                    }
                    if r.down_drifted(m) {
                        found.push(diag::down_drift(r, m));
                    }
                }
            },
            RecordStatus::Running => found.push(diag::running(r)),
            RecordStatus::Failed if retryable(r) => found.push(diag::failed(r)),
            RecordStatus::Failed => found.push(diag::partial(r)),
            RecordStatus::RolledBack => {}
        }
    }
    found
}

/// Plans an apply: every pending version up to the target, ascending.
///
/// See [`check_history`] for which `failed` records are retried and which block.
pub(crate) fn plan_apply(
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
        if current.is_some_and(|c| m.version < c) && !m.unordered {
            diagnostics.push(diag::out_of_order(m, current, opts.allow_out_of_order));
        }
        if step.script().no_transaction {
            diagnostics.push(diag::no_transaction(m));
        }
        if step.script().destructive {
            let accepted = opts.accept_data_loss || step.script().allow_destructive;
            diagnostics.push(diag::destructive(step, accepted));
        }
    }
    Plan {
        current_version: current,
        steps,
        diagnostics,
    }
}

/// Adds an error to `plan` for every step whose script's placeholders `vars` cannot fill
/// (an unknown name, or a value that cannot be written where it sits), naming the version,
/// the file's script and the line; such a plan runs nothing.
pub(crate) fn check_placeholders(
    plan: &mut Plan,
    vars: &std::collections::BTreeMap<String, String>,
) {
    for step in &plan.steps {
        if let Err(e) = step.script().rendered(vars) {
            plan.diagnostics.push(diag::placeholder(step, &e));
        }
    }
}

/// Plans a rollback: applied versions chosen by `target`, newest first. A chosen version
/// without a `down` script is an [`Code::Irreversible`](crate::model::Code::Irreversible) error, so nothing runs.
/// A `down` script that destroys data is an error unless `accept_data_loss` or its file says
/// `-- avocet:allow-destructive`, as an `up` is.
/// Repeatables are never chosen: Flyway has no undo for them, and the next apply runs one
/// again only when its file changes.
pub(crate) fn plan_rollback(
    set: &MigrationSet,
    history: &[HistoryRecord],
    target: RollbackTarget,
    accept_data_loss: bool,
    dialect: DialectKind,
) -> Plan {
    let mut diagnostics = check_history(set, history, dialect);
    let mut applied: Vec<&HistoryRecord> = history
        .iter()
        .filter(|r| r.status == RecordStatus::Applied && !r.version.is_repeatable())
        .collect();
    applied.sort_by_key(|r| std::cmp::Reverse(r.version));
    let last_batch = last_batch(history);
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
            diagnostics.push(diag::irreversible(m));
            continue;
        }
        let mut step = Step::new(m, Direction::Down, dialect);
        step.batch = Some(record.batch);
        if step.script().no_transaction {
            diagnostics.push(diag::no_transaction(m));
        }
        // A `down` that destroys data is guarded as an `up` is.
        if step.script().destructive {
            let accepted = accept_data_loss || step.script().allow_destructive;
            diagnostics.push(diag::destructive(&step, accepted));
        }
        steps.push(step);
    }
    Plan {
        current_version: current_version(history),
        steps,
        diagnostics,
    }
}

/// The batch a `--last-batch` rollback undoes: the newest batch with a numbered version
/// still applied, or none when a newer apply ran only repeatables: no numbered
/// record, applied or since rolled back, has its batch or a newer one. Undoing that apply
/// undoes nothing (repeatables are never rolled back), rather than the deploy before it; once
/// a numbered version runs in a later apply, or a mixed batch's numbered part is rolled
/// back, batches count down again.
fn last_batch(history: &[HistoryRecord]) -> Option<i64> {
    let newest = |keep: fn(&HistoryRecord) -> bool| {
        history.iter().filter(|r| keep(r)).map(|r| r.batch).max()
    };
    let numbered_ever = newest(|r| !r.version.is_repeatable());
    let repeatable_applied =
        newest(|r| r.status == RecordStatus::Applied && r.version.is_repeatable());
    match repeatable_applied > numbered_ever {
        true => None,
        false => newest(|r| r.status == RecordStatus::Applied && !r.version.is_repeatable()),
    }
}

#[cfg(test)]
mod tests;
