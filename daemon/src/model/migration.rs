//! Migrations and their scripts (the sets they form: `set.rs`).

use std::{fmt, ops::Range};

/// The largest migration file a set may hold unless `[limits] max_migration_bytes` says
/// otherwise: 16 MiB (bytes).
pub const DEFAULT_MAX_MIGRATION_BYTES: u64 = 16 << 20;

/// Which way a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The `up` script.
    Up,
    /// The `down` script.
    Down,
}

impl Direction {
    /// `up` or `down`, as in metrics, logs and the history table's `direction` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// One statement of a [`Script`]: where its text is, and where it starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSpan {
    /// Byte range of the statement in [`Script::sql`], without its terminating `;`.
    pub bytes: Range<usize>,
    /// 1-based line of its first token.
    pub line: u64,
    /// 1-based column (in characters) of its first token.
    pub column: u64,
}

/// A script ready to run: its normalised text and what the tokenizer found in it. Built by
/// the catalog, which normalises, checksums and splits the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// The text with CRLF turned into LF and any UTF-8 byte-order mark removed.
    pub sql: String,
    /// Lowercase hex SHA-256 (64 characters) of [`Script::sql`].
    pub checksum: String,
    /// The statements in order; comment-only pieces are left out, so an empty or
    /// comment-only script has none and runs as a successful no-op.
    pub spans: Vec<StatementSpan>,
    /// True when a leading comment line is `-- avocet:no-transaction` or `-- no-transaction`.
    pub no_transaction: bool,
    /// True when a statement destroys data: a [`LintKind::Destructive`](super::LintKind)
    /// finding.
    pub destructive: bool,
    /// True when a leading comment line is `-- avocet:allow-destructive`: its destructive
    /// statements are intended, and an apply runs them without `accept_data_loss`.
    pub allow_destructive: bool,
    /// True when a leading comment line is `-- avocet:allow-empty`: a script with no
    /// statement is intended.
    pub allow_empty: bool,
    /// True when a leading comment line is `-- avocet:template`: the file `avocet new`
    /// wrote, which an empty script means was never filled.
    pub template: bool,
    /// From a leading `-- avocet:ddl-lock-timeout 2s` line: how long each statement of this
    /// script may wait for a lock, overriding the fleet's `ddl_lock_timeout`; zero turns the
    /// guard off for the script. `None` keeps the fleet's.
    pub ddl_lock_timeout: Option<std::time::Duration>,
    /// From a leading `-- avocet:statement-timeout 30min` line: how long each statement may
    /// run, overriding the fleet's `statement_timeout`. `None` keeps the fleet's.
    pub statement_timeout: Option<std::time::Duration>,
    /// What the lint found, statement by statement.
    pub findings: Vec<super::Finding>,
    /// Its `${name}` placeholders, in order (none in comments).
    pub placeholders: Vec<super::Placeholder>,
}

impl Script {
    /// Number of statements.
    pub fn statement_count(&self) -> usize {
        self.spans.len()
    }

    /// The text of statement `i` (0-based), without its `;`.
    ///
    /// # Panics
    /// When `i` is not below [`Script::statement_count`].
    pub fn statement(&self, i: usize) -> &str {
        &self.sql[self.spans[i].bytes.clone()]
    }

    /// The 1-based line and column (in characters) of byte `at` of [`Script::sql`] (its
    /// end when `at` is past it).
    pub fn line_column(&self, at: usize) -> (u64, u64) {
        let before = self.sql.get(..at).unwrap_or(&self.sql);
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let line = before.matches('\n').count() as u64 + 1;
        (line, before[line_start..].chars().count() as u64 + 1)
    }

    /// Every statement's text, in order.
    pub fn statements(&self) -> impl ExactSizeIterator<Item = &str> {
        self.spans.iter().map(|s| &self.sql[s.bytes.clone()])
    }

    /// Every statement's text with its placeholders filled from `vars` (borrowed when a
    /// statement has none).
    ///
    /// # Errors
    /// [`super::PlaceholderError`] for a placeholder with no value in `vars`, or a value
    /// that cannot be written where it sits.
    pub fn rendered(
        &self,
        vars: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<std::borrow::Cow<'_, str>>, super::PlaceholderError> {
        super::placeholder::render(&self.sql, &self.spans, &self.placeholders, vars)
    }
}

/// One versioned change, or a Flyway repeatable migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Its key: the version its file name gives, parsed as its format parses it; unique
    /// within a set. A repeatable migration's is its description
    /// ([`super::MigrationKey::Repeatable`], `R__<description>`): it runs after every
    /// numbered version, again each time its checksum changes, and is never rolled back.
    pub version: super::MigrationKey,
    /// The rest of the file name, e.g. `create_accounts`.
    pub name: String,
    /// The forward script; its checksum is the migration's checksum.
    pub up: Script,
    /// The reverse script, when the set has one.
    pub down: Option<Script>,
    /// refinery's unversioned migration (`U<version>__<name>.sql`): it runs in version
    /// order like the others, but may run below the newest applied version without
    /// `allow_out_of_order` (refinery's `verify_migrations` exempts `Type::Unversioned`).
    pub unordered: bool,
}

/// Lowercase hex SHA-256 (64 characters) identifying a set's content: every migration's
/// version, name and the checksums of its `up` and `down` scripts, in version order. Two
/// sets with the same digest run the same SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SetDigest(pub String);

impl fmt::Display for SetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Two migrations of one set share a version.
#[derive(Debug, Clone, thiserror::Error)]
#[error("version {version} is defined twice: {first} and {second}")]
pub struct DuplicateVersion {
    /// The key.
    pub version: super::MigrationKey,
    /// The first migration's name.
    pub first: String,
    /// The second migration's name.
    pub second: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(sql: &str) -> Script {
        Script {
            sql: sql.into(),
            checksum: format!("sum:{sql}"),
            spans: Vec::new(),
            no_transaction: false,
            destructive: false,
            allow_destructive: false,
            allow_empty: false,
            template: false,
            ddl_lock_timeout: None,
            statement_timeout: None,
            findings: Vec::new(),
            placeholders: Vec::new(),
        }
    }

    #[test]
    fn line_column_counts_lines_and_characters_not_bytes() {
        let s = script("SELECT 1;\n  SELECT 'é', x;\n");
        assert_eq!(s.line_column(0), (1, 1));
        assert_eq!(s.line_column(10), (2, 1));
        let x = s.sql.find('x').unwrap();
        assert_eq!(s.line_column(x), (2, 15));
        assert_eq!(s.line_column(s.sql.len() + 5), (3, 1));
    }
}
