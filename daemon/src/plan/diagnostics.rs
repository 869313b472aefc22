//! Plan warnings and errors, each with a stable code.

use std::fmt;

use crate::{catalog::Migration, dialect::HistoryRecord};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Reported; the plan still runs.
    Warning,
    /// The tenant is blocked: nothing runs on it.
    Error,
}

/// Stable, machine-readable diagnostic codes (the `code` field of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// An applied migration's script changed since it ran (error).
    ChecksumMismatch,
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
    /// The step drops or truncates data (warning).
    Destructive,
    /// A rollback needs a migration that has no `down` script (error).
    Irreversible,
    /// The tenant's database could not be read (error).
    Unreachable,
}

impl Code {
    /// The snake_case spelling used in the API and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::MissingMigration => "missing_migration",
            Self::FailedMigration => "failed_migration",
            Self::PartiallyApplied => "partially_applied",
            Self::RunningMigration => "running_migration",
            Self::OutOfOrder => "out_of_order",
            Self::NoTransaction => "no_transaction",
            Self::Destructive => "destructive",
            Self::Irreversible => "irreversible",
            Self::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Warning or error.
    pub severity: Severity,
    /// What kind of finding.
    pub code: Code,
    /// The version concerned, if one is.
    pub version: Option<i64>,
    /// A sentence for people, naming the version and what to do.
    pub message: String,
}

impl Diagnostic {
    fn new(severity: Severity, code: Code, version: Option<i64>, message: String) -> Self {
        Self {
            severity,
            code,
            version,
            message,
        }
    }

    pub(super) fn missing(r: &HistoryRecord) -> Self {
        Self::new(
            Severity::Error,
            Code::MissingMigration,
            Some(r.version),
            format!(
                "version {} ({}) is applied but missing from the migration set",
                r.version, r.name
            ),
        )
    }

    pub(super) fn drift(r: &HistoryRecord, m: &Migration) -> Self {
        Self::new(
            Severity::Error,
            Code::ChecksumMismatch,
            Some(r.version),
            format!(
                "version {} ({}) changed after it was applied: checksum {} applied, {} in the set",
                r.version,
                m.name,
                &r.checksum[..r.checksum.len().min(12)],
                &m.up.checksum[..12]
            ),
        )
    }

    pub(super) fn running(r: &HistoryRecord) -> Self {
        Self::new(
            Severity::Error,
            Code::RunningMigration,
            Some(r.version),
            format!(
                "version {} ({}) is recorded as running ({} of {} statements done): its effect \
                 is unknown; check the schema, then repair it",
                r.version, r.name, r.statements_done, r.statements_total
            ),
        )
    }

    pub(super) fn failed(r: &HistoryRecord) -> Self {
        Self::new(
            Severity::Warning,
            Code::FailedMigration,
            Some(r.version),
            format!(
                "version {} ({}) failed before and left nothing behind; it runs again: {}",
                r.version,
                r.name,
                r.error.as_deref().unwrap_or("no error recorded")
            ),
        )
    }

    pub(super) fn partial(r: &HistoryRecord) -> Self {
        Self::new(
            Severity::Error,
            Code::PartiallyApplied,
            Some(r.version),
            format!(
                "version {} ({}) {} failed after {} of {} statements outside a transaction; \
                 check the schema, then repair it: {}",
                r.version,
                r.name,
                match r.direction {
                    crate::catalog::Direction::Up => "up",
                    crate::catalog::Direction::Down => "down (rollback)",
                },
                r.statements_done,
                r.statements_total,
                r.error.as_deref().unwrap_or("no error recorded")
            ),
        )
    }

    pub(super) fn out_of_order(m: &Migration, current: Option<i64>, allowed: bool) -> Self {
        let severity = if allowed {
            Severity::Warning
        } else {
            Severity::Error
        };
        let mut message = format!(
            "version {} ({}) is pending but older than applied version {}",
            m.version,
            m.name,
            current.unwrap_or_default()
        );
        if !allowed {
            message.push_str("; allow out-of-order to apply it");
        }
        Self::new(severity, Code::OutOfOrder, Some(m.version), message)
    }

    pub(super) fn no_transaction(m: &Migration) -> Self {
        Self::new(
            Severity::Warning,
            Code::NoTransaction,
            Some(m.version),
            format!(
                "version {} ({}) runs statement by statement outside a transaction",
                m.version, m.name
            ),
        )
    }

    pub(super) fn destructive(m: &Migration) -> Self {
        Self::new(
            Severity::Warning,
            Code::Destructive,
            Some(m.version),
            format!(
                "version {} ({}) drops or truncates a table, column or schema",
                m.version, m.name
            ),
        )
    }

    pub(super) fn irreversible(m: &Migration) -> Self {
        Self::new(
            Severity::Error,
            Code::Irreversible,
            Some(m.version),
            format!(
                "version {} ({}) has no down script, so it cannot be rolled back",
                m.version, m.name
            ),
        )
    }

    /// The tenant could not be read; `cause` is the database error (never the DSN).
    pub fn unreachable(cause: &str) -> Self {
        Self::new(
            Severity::Error,
            Code::Unreachable,
            None,
            format!("cannot read the tenant: {cause}"),
        )
    }
}
