//! The plan's warnings and errors, each with its stable [`Code`] and a sentence that names
//! the version and what to do.

use crate::model::{
    Code, Diagnostic, Direction, HistoryRecord, Migration, MigrationKey, Severity, Step, Version,
};

fn new(
    severity: Severity,
    code: Code,
    version: Option<MigrationKey>,
    message: String,
) -> Diagnostic {
    Diagnostic {
        severity,
        code,
        version,
        message,
    }
}

/// The first 12 characters of a checksum read from a tenant, which may hold anything.
fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

pub(super) fn missing(r: &HistoryRecord) -> Diagnostic {
    new(
        Severity::Error,
        Code::MissingMigration,
        Some(r.version.clone()),
        format!(
            "version {} ({}) is applied but missing from the migration set",
            r.version, r.name
        ),
    )
}

pub(super) fn drift(r: &HistoryRecord, m: &Migration) -> Diagnostic {
    new(
        Severity::Error,
        Code::ChecksumMismatch,
        Some(r.version.clone()),
        format!(
            "version {} ({}) changed after it was applied: checksum {} applied, {} in the set",
            r.version,
            m.name,
            short(&r.checksum),
            short(&m.up.checksum)
        ),
    )
}

pub(super) fn down_drift(r: &HistoryRecord, m: &Migration) -> Diagnostic {
    let recorded = short(r.down_checksum.as_deref().unwrap_or_default());
    let now = match &m.down {
        Some(d) => format!("{} in the set", short(&d.checksum)),
        None => "the set has no down script for it now".to_owned(),
    };
    new(
        Severity::Warning,
        Code::DownChecksumMismatch,
        Some(r.version.clone()),
        format!(
            "version {} ({}) down script changed after the migration was applied: checksum \
             {recorded} recorded, {now}; a rollback runs the file as it is now \
             (avocet repair --accept-checksum records it)",
            r.version, m.name
        ),
    )
}

pub(super) fn running(r: &HistoryRecord) -> Diagnostic {
    new(
        Severity::Error,
        Code::RunningMigration,
        Some(r.version.clone()),
        format!(
            "version {} ({}) is recorded as running ({} of {} statements done): its effect \
             is unknown; check the schema, then repair it",
            r.version, r.name, r.statements_done, r.statements_total
        ),
    )
}

pub(super) fn failed(r: &HistoryRecord) -> Diagnostic {
    new(
        Severity::Warning,
        Code::FailedMigration,
        Some(r.version.clone()),
        format!(
            "version {} ({}) failed before and left nothing behind; it runs again: {}",
            r.version,
            r.name,
            r.error.as_deref().unwrap_or("no error recorded")
        ),
    )
}

pub(super) fn failed_gone(r: &HistoryRecord) -> Diagnostic {
    new(
        Severity::Warning,
        Code::FailedMigration,
        Some(r.version.clone()),
        format!(
            "version {} ({}) failed in a transaction and left nothing behind; its file is gone \
             from the set, so it does not run again (avocet repair --forget clears the \
             record): {}",
            r.version,
            r.name,
            r.error.as_deref().unwrap_or("no error recorded")
        ),
    )
}

pub(super) fn partial(r: &HistoryRecord) -> Diagnostic {
    new(
        Severity::Error,
        Code::PartiallyApplied,
        Some(r.version.clone()),
        format!(
            "version {} ({}) {} failed after {} of {} statements, which no transaction undid; \
             check the schema, then repair it: {}",
            r.version,
            r.name,
            match r.direction {
                Direction::Up => "up",
                Direction::Down => "down (rollback)",
            },
            r.statements_done,
            r.statements_total,
            r.error.as_deref().unwrap_or("no error recorded")
        ),
    )
}

pub(super) fn out_of_order(m: &Migration, current: Option<Version>, allowed: bool) -> Diagnostic {
    let severity = if allowed {
        Severity::Warning
    } else {
        Severity::Error
    };
    let mut message = format!(
        "version {} ({}) is pending but older than applied version {}",
        m.version,
        m.name,
        current.map(|c| c.to_string()).unwrap_or_default()
    );
    if !allowed {
        message.push_str("; allow out-of-order to apply it");
    }
    new(severity, Code::OutOfOrder, Some(m.version.clone()), message)
}

pub(super) fn no_transaction(m: &Migration) -> Diagnostic {
    new(
        Severity::Warning,
        Code::NoTransaction,
        Some(m.version.clone()),
        format!(
            "version {} ({}) runs statement by statement outside a transaction",
            m.version, m.name
        ),
    )
}

/// A migration with destructive statements: a warning when `accepted`, else an error that
/// blocks the tenant and says how to accept it.
pub(super) fn destructive(step: &Step, accepted: bool) -> Diagnostic {
    let m = &step.migration;
    let what: Vec<String> = step
        .script()
        .findings
        .iter()
        .filter(|f| f.blocks)
        .map(|f| format!("{} at line {}", f.code.as_str(), f.line))
        .collect();
    let what = what.join(", ");
    let (script, command) = match step.direction {
        crate::model::Direction::Up => ("", "apply"),
        crate::model::Direction::Down => ("its down script ", "rollback"),
    };
    match accepted {
        true => new(
            Severity::Warning,
            Code::Destructive,
            Some(m.version.clone()),
            format!(
                "version {} ({}): {script}destroys data: {what}",
                m.version, m.name
            ),
        ),
        false => new(
            Severity::Error,
            Code::Destructive,
            Some(m.version.clone()),
            format!(
                "version {} ({}): {script}destroys data ({what}); if that is intended, pass \
                 accept_data_loss (avocet {command} --accept-data-loss) or mark the file \
                 `-- avocet:allow-destructive`",
                m.version, m.name
            ),
        ),
    }
}

pub(super) fn placeholder(
    step: &crate::model::Step,
    e: &crate::model::PlaceholderError,
) -> Diagnostic {
    let m = &step.migration;
    new(
        Severity::Error,
        Code::Placeholder,
        Some(m.version.clone()),
        format!(
            "version {} ({}), {} script: {e}",
            m.version,
            m.name,
            step.direction.as_str()
        ),
    )
}

pub(super) fn irreversible(m: &Migration) -> Diagnostic {
    new(
        Severity::Error,
        Code::Irreversible,
        Some(m.version.clone()),
        format!(
            "version {} ({}) has no down script, so it cannot be rolled back",
            m.version, m.name
        ),
    )
}

pub(super) fn empty(m: &Migration, template: bool) -> Diagnostic {
    match template {
        true => new(
            Severity::Error,
            Code::EmptyMigration,
            Some(m.version.clone()),
            format!(
                "version {} ({}) is still the empty file `avocet new` wrote: write its SQL \
                 (and remove the `-- avocet:template` line)",
                m.version, m.name
            ),
        ),
        false => new(
            Severity::Warning,
            Code::EmptyMigration,
            Some(m.version.clone()),
            format!(
                "version {} ({}) has no statement, only comments: it will be recorded as \
                 applied having done nothing (mark the file `-- avocet:allow-empty` if that is \
                 intended)",
                m.version, m.name
            ),
        ),
    }
}
