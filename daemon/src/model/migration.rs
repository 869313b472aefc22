//! Migrations, their scripts and the sets they form.

use std::{fmt, ops::Range, sync::Arc};

use sha2::{Digest, Sha256};

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
    /// The version its file name gives, parsed as its format parses it; unique within a set.
    /// A repeatable migration's is its key `R__<description>`
    /// ([`super::Version::repeatable`]): it runs after every numbered version, again each
    /// time its checksum changes, and is never rolled back.
    pub version: super::Version,
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
    /// The version.
    pub version: super::Version,
    /// The first migration's name.
    pub first: String,
    /// The second migration's name.
    pub second: String,
}

/// The ordered, immutable list of migrations one fleet follows.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    /// Sorted by version, ascending, no duplicates.
    migrations: Vec<Arc<Migration>>,
    digest: SetDigest,
    /// What loading it noticed without refusing it, e.g. files that look like migrations
    /// but are not read.
    warnings: Vec<String>,
    /// The on-disk layout it was read from (never `Auto` once loaded from a directory).
    format: super::SetFormat,
}

impl MigrationSet {
    /// Builds a set from migrations in any order and computes its [`SetDigest`].
    ///
    /// # Errors
    /// [`DuplicateVersion`] when two migrations share a version.
    pub fn new(mut migrations: Vec<Migration>) -> Result<Self, DuplicateVersion> {
        migrations.sort_by_key(|m| m.version);
        if let Some(w) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(DuplicateVersion {
                version: w[0].version,
                first: w[0].name.clone(),
                second: w[1].name.clone(),
            });
        }
        let mut hash = Sha256::new();
        for m in &migrations {
            let down = m.down.as_ref().map_or("-", |d| d.checksum.as_str());
            // `\tunordered` only when set, so every other set keeps its digest.
            let unordered = if m.unordered { "\tunordered" } else { "" };
            hash.update(format!(
                "{}\t{}\t{}\t{down}{unordered}\n",
                m.version, m.name, m.up.checksum
            ));
        }
        Ok(Self {
            migrations: migrations.into_iter().map(Arc::new).collect(),
            digest: SetDigest(hex::encode(hash.finalize())),
            warnings: Vec::new(),
            format: super::SetFormat::Auto,
        })
    }

    /// The same set with every script's findings judged by `policy` (a fleet's `[lint]`):
    /// `off` codes removed, `blocks` as the policy says, and each script's `destructive`
    /// from them. The digest does not change: the files are the same.
    pub fn with_lint(mut self, policy: &super::LintPolicy) -> Self {
        if policy.0.is_empty() {
            return self;
        }
        let judge = |s: &mut Script| {
            s.findings = policy.apply(&s.findings);
            s.destructive = s.findings.iter().any(|f| f.blocks);
        };
        for m in &mut self.migrations {
            let mut judged = (**m).clone();
            judge(&mut judged.up);
            if let Some(down) = &mut judged.down {
                judge(down);
            }
            *m = Arc::new(judged);
        }
        self
    }

    /// The same set with `warnings` from its loading (they do not change its digest).
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// The same set, read from a directory laid out as `format`.
    pub fn with_format(mut self, format: super::SetFormat) -> Self {
        self.format = format;
        self
    }

    /// The layout the set was read from; `Auto` for a set built in memory.
    pub fn format(&self) -> super::SetFormat {
        self.format
    }

    /// What loading the set noticed without refusing it, one sentence each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// All migrations, ascending by version.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Migration>> {
        self.migrations.iter()
    }

    /// The migration with `version` (a [`super::Version`] or an `i64`), if the set has it.
    pub fn get(&self, version: impl Into<super::Version>) -> Option<&Arc<Migration>> {
        let version = version.into();
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// The highest numbered version (repeatables have none), or `None` when the set has
    /// no versioned migration.
    pub fn latest(&self) -> Option<super::Version> {
        self.migrations
            .iter()
            .rev()
            .map(|m| m.version)
            .find(|v| !v.is_repeatable())
    }

    /// Number of migrations.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// True when the set has no migrations.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    /// The set's content digest.
    pub fn digest(&self) -> &SetDigest {
        &self.digest
    }
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

    fn migration(version: i64, name: &str, down: Option<&str>) -> Migration {
        Migration {
            version: version.into(),
            name: name.into(),
            up: script(name),
            down: down.map(script),
            unordered: false,
        }
    }

    #[test]
    fn the_digest_follows_content_not_input_order() {
        let a = MigrationSet::new(vec![migration(2, "b", None), migration(1, "a", None)]);
        let b = MigrationSet::new(vec![migration(1, "a", None), migration(2, "b", None)]);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().0.len(), 64);
        let with_down =
            MigrationSet::new(vec![migration(1, "a", Some("x")), migration(2, "b", None)]);
        assert_ne!(with_down.unwrap().digest(), a.digest());
        let renamed = MigrationSet::new(vec![migration(1, "a", None), migration(2, "c", None)]);
        assert_ne!(renamed.unwrap().digest(), a.digest());
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let err = MigrationSet::new(vec![migration(1, "a", None), migration(1, "b", None)]);
        assert_eq!(err.unwrap_err().version, 1);
    }
}
