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

use std::{cmp::Ordering, collections::HashMap, sync::Arc};

use crate::model::{
    ApplyOptions, DialectKind, Direction, HistoryRecord, Migration, MigrationKey, MigrationSet,
    Plan, RecordStatus, RollbackTarget, Step, Version,
};
use diagnostics as diag;

/// The newest numbered version whose record is `applied`, in the set's order
/// ([`MigrationSet::compare`]: diesel's text order for a diesel set); a repeatable is never
/// current.
pub(crate) fn current_version(set: &MigrationSet, history: &[HistoryRecord]) -> Option<Version> {
    set.newest(
        history
            .iter()
            .filter(|r| r.status == RecordStatus::Applied)
            .filter_map(|r| r.version.version()),
    )
}

/// The version at or below which every versioned migration is covered by a baseline
/// migration that ran: the newest applied record whose script was a baseline's
/// ([`MigrationSet::for_record`]). Flyway marks the versions below an applied baseline
/// migration `BELOW_BASELINE` and never runs them.
fn baseline_floor(set: &MigrationSet, history: &[HistoryRecord]) -> Option<Version> {
    set.newest(
        history
            .iter()
            .filter(|r| r.status == RecordStatus::Applied)
            .filter(|r| set.ran_baseline(r))
            .filter_map(|r| r.version.version()),
    )
}

/// The baseline migration an apply up to `target` starts from on a tenant that has
/// applied nothing: the newest one at or below the target (Flyway: "the latest baseline
/// migration will be applied" on a new environment, then the versioned migrations above
/// it; on an environment with history baselines are ignored).
fn starting_baseline<'a>(
    set: &'a MigrationSet,
    history: &[HistoryRecord],
    target: Option<&Version>,
) -> Option<&'a Arc<Migration>> {
    let fresh = !history
        .iter()
        .any(|r| r.status == RecordStatus::Applied && !r.version.is_repeatable());
    fresh
        .then(|| {
            set.baselines()
                .rev()
                .find(|b| target.is_none_or(|t| set.compare(&b.version, t) != Ordering::Greater))
        })
        .flatten()
}

/// Migrations of the set (up to `target`) not applied on the tenant, in the set's order:
/// on a tenant that has applied nothing, the newest baseline migration up to the target
/// first ([`starting_baseline`]); numbered versions without an `applied` record, except
/// those at or below a baseline that ran or runs first; then repeatables whose file's
/// checksum is not the one their record says ran (Flyway re-applies a repeatable "every
/// time its checksum changes"). A target names a numbered version, so an apply to one runs
/// no repeatable: they are written against the latest schema.
pub(crate) fn pending<'a>(
    set: &'a MigrationSet,
    history: &[HistoryRecord],
    target: Option<&'a Version>,
) -> impl Iterator<Item = &'a Arc<Migration>> {
    let applied: HashMap<&MigrationKey, &HistoryRecord> = history
        .iter()
        .filter(|r| r.status == RecordStatus::Applied)
        .map(|r| (&r.version, r))
        .collect();
    let start = starting_baseline(set, history, target);
    let floor = start
        .and_then(|b| b.version.version())
        .or_else(|| baseline_floor(set, history));
    let at_or_below =
        move |k: &MigrationKey, limit: &Version| set.compare(k, limit) != Ordering::Greater;
    let versioned = set.iter().filter(move |m| {
        let k = &m.version;
        // A repeatable is never covered by a baseline, and orders after every target.
        let covered = !k.is_repeatable() && floor.is_some_and(|f| at_or_below(k, &f));
        target.is_none_or(|t| at_or_below(k, t))
            && !covered
            && applied.get(k).is_none_or(|r| r.rerun_due(m))
    });
    start.into_iter().chain(versioned)
}

/// Compares the history with the set: drift, missing versions, failed and running records.
///
/// Drift of an applied record's `up` script is an error, except for a repeatable, which
/// runs again ([`pending`]); drift of its `down` script (edited or removed since the record
/// was written) is a warning, since nothing has run it yet: a rollback would run the file
/// as it is now.
///
/// A `failed` record is retried (a warning) only when it cannot have left anything behind:
/// an `up` that ran in a transaction (`dialect` has transactional DDL and the script ran
/// without a `no-transaction` marker, as its record says, or its file when the record is
/// older than that column). Any other `failed` record, like a `running` one, is an error
/// until repaired. A retryable one whose file is gone from the set is only reported: it
/// left nothing behind and will not run again.
pub(crate) fn check_history(
    set: &MigrationSet,
    history: &[HistoryRecord],
    dialect: DialectKind,
) -> Vec<crate::model::Diagnostic> {
    let retryable = |r: &HistoryRecord| retryable(set, r, dialect);
    let mut found = Vec::new();
    for r in history {
        match r.status {
            RecordStatus::Applied => match set.for_record(r) {
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
            RecordStatus::Failed if retryable(r) => match set.for_record(r) {
                Some(_) => found.push(diag::failed(r)),
                None => found.push(diag::failed_gone(r)),
            },
            RecordStatus::Failed => found.push(diag::partial(r)),
            RecordStatus::RolledBack => {}
        }
    }
    found
}

/// True when `r`, a `failed` record, cannot have left anything behind: an `up` that ran in
/// a transaction (see [`check_history`]). An apply retries it while its file is in the set.
fn retryable(set: &MigrationSet, r: &HistoryRecord, dialect: DialectKind) -> bool {
    let no_transaction = r
        .no_transaction
        .or_else(|| set.for_record(r).map(|m| m.up.no_transaction));
    r.direction == Direction::Up
        && r.statements_done == 0
        && dialect.transactional_ddl()
        && no_transaction == Some(false)
}

/// True when `r` stops an apply until `avocet repair`: a `running` record, or a `failed`
/// one an apply does not retry ([`check_history`]'s errors on records).
pub(crate) fn blocks_apply(set: &MigrationSet, r: &HistoryRecord, dialect: DialectKind) -> bool {
    match r.status {
        RecordStatus::Running => true,
        RecordStatus::Failed => !retryable(set, r, dialect),
        RecordStatus::Applied | RecordStatus::RolledBack => false,
    }
}

/// What `history` says was applied, for a tenant's last-known state.
pub(crate) fn applied(history: &[HistoryRecord]) -> crate::model::Applied {
    let mut applied = crate::model::Applied::default();
    for r in history.iter().filter(|r| r.status == RecordStatus::Applied) {
        match &r.version {
            MigrationKey::Repeatable(_) => {
                applied
                    .repeatables
                    .insert(r.version.clone(), r.checksum.clone());
            }
            MigrationKey::Versioned(v) => {
                applied.versions.insert(*v);
            }
        }
    }
    applied
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
    let current = current_version(set, history);
    let mut diagnostics = check_history(set, history, dialect);
    let steps: Vec<Step> = pending(set, history, opts.target.as_ref())
        .map(|m| Step::new(m, Direction::Up, dialect))
        .collect();
    for step in &steps {
        let m = &step.migration;
        let below = |c: &Version| set.compare(&m.version, c) == Ordering::Less;
        if current.as_ref().is_some_and(below) && !m.unordered {
            diagnostics.push(diag::out_of_order(m, current, opts.allow_out_of_order));
        }
        if step.script().no_transaction {
            diagnostics.push(diag::no_transaction(m));
        }
        if step.script().destructive {
            let accepted = opts.accept_data_loss || step.script().allow_destructive;
            diagnostics.push(diag::destructive(step, accepted));
        }
        if step.script().statement_count() == 0 && !step.script().allow_empty {
            diagnostics.push(diag::empty(m, step.script().template));
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

/// Plans a rollback: applied versions chosen by `target`, newest first in the set's order.
/// `--to 0` rolls back every applied version, version 0 itself included (diesel's
/// `00000000000000_diesel_initial_setup` is version 0): "0" names no migration to keep.
/// A chosen version without a `down` script is an
/// [`Code::Irreversible`](crate::model::Code::Irreversible) error, so nothing runs; so is a
/// baseline migration that ran (Flyway has no undo for one). A `down` script that destroys
/// data is an error unless `accept_data_loss` or its file says `-- avocet:allow-destructive`,
/// as an `up` is.
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
    applied.sort_by(|a, b| set.compare(&b.version, &a.version));
    let last_batch = last_batch(history);
    let chosen: Vec<&HistoryRecord> = match target {
        RollbackTarget::Steps(n) => applied.into_iter().take(n as usize).collect(),
        RollbackTarget::ToVersion(v) if is_zero(v) => applied,
        RollbackTarget::ToVersion(v) => applied
            .into_iter()
            .filter(|r| set.compare(&r.version, &v) == Ordering::Greater)
            .collect(),
        RollbackTarget::LastBatch => applied
            .into_iter()
            .filter(|r| Some(r.batch) == last_batch)
            .collect(),
    };
    let mut steps = Vec::with_capacity(chosen.len());
    for record in chosen {
        // A version missing from the set already has its error from check_history.
        let Some(m) = set.for_record(record) else {
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
        current_version: current_version(set, history),
        steps,
        diagnostics,
    }
}

/// True for the integer version 0 (`--to 0`), which a rollback reads as "everything".
fn is_zero(v: Version) -> bool {
    v.as_i64() == Some(0)
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
mod classify_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tool_order_tests;
