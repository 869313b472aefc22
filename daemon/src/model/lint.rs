//! What the lint finds in a migration's statements: data it destroys, and PostgreSQL lock
//! hazards (PostgreSQL documentation, "Explicit Locking", 13.3, and "ALTER TABLE" notes).

use serde::{Deserialize, Serialize};

/// A finding's code: what the statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LintCode {
    /// `DROP TABLE`.
    DropTable,
    /// `ALTER TABLE … DROP COLUMN`.
    DropColumn,
    /// `DROP SCHEMA`.
    DropSchema,
    /// `DROP DATABASE`.
    DropDatabase,
    /// `TRUNCATE`.
    Truncate,
    /// `DELETE` without `WHERE`.
    DeleteWithoutWhere,
    /// `UPDATE` without `WHERE`.
    UpdateWithoutWhere,
    /// A column's type changed to a bounded one (`varchar(n)`, `smallint`, `numeric(p,s)`…):
    /// values that do not fit fail or are cut.
    NarrowingType,
    /// PostgreSQL `CREATE INDEX` without `CONCURRENTLY` on a table the script did not create:
    /// writes to the table wait until the index is built.
    BlockingIndex,
    /// PostgreSQL `ADD COLUMN … DEFAULT` with a volatile default: the table is rewritten
    /// under an `ACCESS EXCLUSIVE` lock.
    VolatileDefault,
    /// PostgreSQL `SET NOT NULL` without a validated `CHECK (… IS NOT NULL)` first: a full
    /// scan under an `ACCESS EXCLUSIVE` lock.
    SetNotNull,
    /// PostgreSQL `ALTER COLUMN … TYPE`: most type changes rewrite the table under an
    /// `ACCESS EXCLUSIVE` lock.
    TypeRewrite,
    /// PostgreSQL `ADD FOREIGN KEY` without `NOT VALID`: both tables are scanned while
    /// locked against writes.
    ValidatingForeignKey,
    /// The statement could not be parsed, so nothing is known about it.
    Unparsed,
}

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LintKind {
    /// Loses data: an apply runs it only when accepted.
    Destructive,
    /// Rewrites every row's data (a backfill): reported, not refused.
    DataRewrite,
    /// Holds a lock that blocks the application for the statement's duration.
    LockHazard,
    /// For information.
    Note,
}

impl LintCode {
    /// The snake_case spelling used in the API and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DropTable => "drop_table",
            Self::DropColumn => "drop_column",
            Self::DropSchema => "drop_schema",
            Self::DropDatabase => "drop_database",
            Self::Truncate => "truncate",
            Self::DeleteWithoutWhere => "delete_without_where",
            Self::UpdateWithoutWhere => "update_without_where",
            Self::NarrowingType => "narrowing_type",
            Self::BlockingIndex => "blocking_index",
            Self::VolatileDefault => "volatile_default",
            Self::SetNotNull => "set_not_null",
            Self::TypeRewrite => "type_rewrite",
            Self::ValidatingForeignKey => "validating_foreign_key",
            Self::Unparsed => "unparsed",
        }
    }

    /// The stable identifier, as Atlas numbers its checks (`DS101`): `AV1xx` destroy data,
    /// `AV2xx` rewrite data, `AV3xx` are PostgreSQL lock hazards, `AV9xx` notes. Listed in
    /// `docs/lint.md`; never reused.
    pub fn id(self) -> &'static str {
        match self {
            Self::DropTable => "AV101",
            Self::DropColumn => "AV102",
            Self::DropSchema => "AV103",
            Self::DropDatabase => "AV104",
            Self::Truncate => "AV105",
            Self::DeleteWithoutWhere => "AV106",
            Self::NarrowingType => "AV107",
            Self::UpdateWithoutWhere => "AV201",
            Self::BlockingIndex => "AV301",
            Self::VolatileDefault => "AV302",
            Self::SetNotNull => "AV303",
            Self::TypeRewrite => "AV304",
            Self::ValidatingForeignKey => "AV305",
            Self::Unparsed => "AV901",
        }
    }

    /// Every code, in identifier order.
    pub const ALL: [LintCode; 14] = [
        Self::DropTable,
        Self::DropColumn,
        Self::DropSchema,
        Self::DropDatabase,
        Self::Truncate,
        Self::DeleteWithoutWhere,
        Self::NarrowingType,
        Self::UpdateWithoutWhere,
        Self::BlockingIndex,
        Self::VolatileDefault,
        Self::SetNotNull,
        Self::TypeRewrite,
        Self::ValidatingForeignKey,
        Self::Unparsed,
    ];

    /// The code spelled `name`: its snake_case name or its identifier (`AV201`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == name || c.id().eq_ignore_ascii_case(name))
    }

    /// Its weight.
    pub fn kind(self) -> LintKind {
        match self {
            Self::DropTable
            | Self::DropColumn
            | Self::DropSchema
            | Self::DropDatabase
            | Self::Truncate
            | Self::DeleteWithoutWhere
            | Self::NarrowingType => LintKind::Destructive,
            Self::UpdateWithoutWhere => LintKind::DataRewrite,
            Self::BlockingIndex
            | Self::VolatileDefault
            | Self::SetNotNull
            | Self::TypeRewrite
            | Self::ValidatingForeignKey => LintKind::LockHazard,
            Self::Unparsed => LintKind::Note,
        }
    }

    /// Why it matters, in one line.
    pub fn why(self) -> &'static str {
        match self {
            Self::DropTable => "drops a table and every row in it",
            Self::DropColumn => "drops a column and its values",
            Self::DropSchema => "drops a schema and everything in it",
            Self::DropDatabase => "drops a database",
            Self::Truncate => "deletes every row of a table",
            Self::DeleteWithoutWhere => "DELETE without WHERE deletes every row",
            Self::UpdateWithoutWhere => {
                "UPDATE without WHERE rewrites every row (a backfill is one; check it is meant)"
            }
            Self::NarrowingType => {
                "changes a column to a bounded type: values that do not fit fail or are cut"
            }
            Self::BlockingIndex => {
                "CREATE INDEX without CONCURRENTLY blocks writes to the table until it is built"
            }
            Self::VolatileDefault => {
                "a volatile DEFAULT rewrites the table under an ACCESS EXCLUSIVE lock"
            }
            Self::SetNotNull => {
                "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock; add a CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL"
            }
            Self::TypeRewrite => {
                "ALTER COLUMN TYPE usually rewrites the table under an ACCESS EXCLUSIVE lock"
            }
            Self::ValidatingForeignKey => {
                "ADD FOREIGN KEY without NOT VALID scans both tables while blocking writes; add it NOT VALID, then VALIDATE CONSTRAINT"
            }
            Self::Unparsed => "the lint could not parse this statement; nothing is known about it",
        }
    }
}

/// One finding: a statement of a script and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What the statement does.
    pub code: LintCode,
    /// 1-based line of the statement in the file.
    pub line: u64,
    /// An apply (or rollback) runs it only when its data loss is accepted: by default every
    /// [`LintKind::Destructive`] finding; a fleet's `[lint]` may say otherwise per code.
    #[serde(default)]
    pub blocks: bool,
}

/// What a fleet makes of one code (`[fleets.NAME.lint] update_without_where = "error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LintSeverity {
    /// Refused unless accepted, as destructive findings are by default.
    Error,
    /// Reported; the plan runs.
    Warning,
    /// Not reported.
    Off,
}

/// A fleet's lint severities, per code; codes it does not name keep their default
/// (destructive findings `error`, the others `warning`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintPolicy(pub std::collections::BTreeMap<LintCode, LintSeverity>);

impl LintPolicy {
    /// The severity of `code` under this policy.
    pub fn severity(&self, code: LintCode) -> LintSeverity {
        self.0.get(&code).copied().unwrap_or(match code.kind() {
            LintKind::Destructive => LintSeverity::Error,
            _ => LintSeverity::Warning,
        })
    }

    /// `findings` under this policy: `off` ones removed, `blocks` set by severity.
    pub fn apply(&self, findings: &[Finding]) -> Vec<Finding> {
        findings
            .iter()
            .filter_map(|f| match self.severity(f.code) {
                LintSeverity::Off => None,
                s => Some(Finding {
                    blocks: s == LintSeverity::Error,
                    ..f.clone()
                }),
            })
            .collect()
    }
}
