//! Reading a migration set from a directory: its format's source finds the files, this
//! parses, checksums and orders them.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{
    ScriptError,
    script::parse_script_as,
    source::{self, FoundScript, Listing},
};
use crate::model::{DialectKind, DuplicateVersion, Migration, MigrationSet, Script, SetFormat};

/// `path` as given, and for a relative one the working directory it resolves against
/// (`migrations/postgres (resolved against the working directory /srv)`), since the daemon
/// started elsewhere is the usual reason it is not found (issue 32, item 8).
fn with_cwd(path: &std::path::Path) -> String {
    match (path.is_relative(), std::env::current_dir()) {
        (true, Ok(cwd)) => format!(
            "{} (resolved against the working directory {})",
            path.display(),
            cwd.display()
        ),
        _ => path.display().to_string(),
    }
}

/// Why a migration set could not be loaded. Every variant names the file or version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {}: {source}", with_cwd(path))]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A `.sql` file whose name is not `<version>_<name>[.up|.down].sql`.
    #[error("{path}: file name must be <version>_<name>.up.sql, .down.sql or .sql")]
    BadFileName {
        /// The file.
        path: PathBuf,
    },
    /// Two files claim one version (and direction).
    #[error("version {version} is defined twice: {first} and {second}")]
    DuplicateVersion {
        /// The migration's key.
        version: crate::model::MigrationKey,
        /// The first file or name.
        first: String,
        /// The second file or name.
        second: String,
    },
    /// A `.down.sql` file without its `.up.sql`.
    #[error("{path}: down script without an up script for version {version}")]
    DownWithoutUp {
        /// The down file.
        path: PathBuf,
        /// Its version.
        version: crate::model::Version,
    },
    /// A file or directory that its set's format does not allow, such as a version that is
    /// not an integer or a broken side file (`metadata.toml`).
    #[error("{path}: {format} migration: {reason}")]
    Format {
        /// The file or directory.
        path: PathBuf,
        /// The set's format.
        format: SetFormat,
        /// What is wrong, in a sentence.
        reason: String,
    },
    /// A file that resolves outside the set's directory (a symbolic link out of it), or
    /// that is not a regular file.
    #[error("{path}: {reason}: refused")]
    Outside {
        /// The file as the set names it.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A file above `[limits] max_migration_bytes`.
    #[error("{path}: {bytes} bytes, above max_migration_bytes ({limit}): split the migration")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A script the tokenizer rejected, or that is not UTF-8.
    #[error("{path}: {source}")]
    Script {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: ScriptError,
    },
}

/// Loads the migration set in `dir`, laid out as `format` (detected when
/// [`SetFormat::Auto`]), and tokenises every script with `dialect`. A script moves out of
/// its migration's transaction by its own marker (`-- avocet:no-transaction`,
/// `-- no-transaction`) or by its format's directive.
///
/// # Errors
/// [`CatalogError`] naming the file: unreadable directory or file, a name or side file the
/// format does not allow, a duplicate version, a down script without an up script, or a
/// script that does not tokenise.
pub(crate) fn load_dir(
    dir: &Path,
    dialect: DialectKind,
    format: SetFormat,
) -> Result<MigrationSet, CatalogError> {
    let _root = source::SetRoot::enter(dir)?;
    let (format, source) = source::source(format, dir)?;
    let Listing {
        mut found,
        warnings,
    } = source.read(dir)?;
    // A Flyway baseline migration may share its version with a versioned one.
    found.sort_by(|a, b| (a.baseline, &a.version).cmp(&(b.baseline, &b.version)));
    if let Some(w) = found
        .windows(2)
        .find(|w| (w[0].baseline, &w[0].version) == (w[1].baseline, &w[1].version))
    {
        return Err(CatalogError::DuplicateVersion {
            version: w[0].version.clone(),
            first: w[0].up.path.display().to_string(),
            second: w[1].up.path.display().to_string(),
        });
    }
    let script = |f: &FoundScript| -> Result<Script, CatalogError> {
        parse_script_as(&f.text, dialect, f.no_transaction, format).map_err(|source| {
            CatalogError::Script {
                path: f.path.clone(),
                source,
            }
        })
    };
    let (mut migrations, mut baselines) = (Vec::new(), Vec::new());
    let mut texts = BTreeMap::new();
    for f in &found {
        let m = Migration {
            version: f.version.clone(),
            name: f.name.clone(),
            up: script(&f.up)?,
            down: f.down.as_ref().map(script).transpose()?,
            unordered: f.unordered,
        };
        match f.baseline {
            true => baselines.push(m),
            false => migrations.push(m),
        }
        if let (Some(text), Some(v)) = (&f.text, f.version.version()) {
            texts.insert(v, text.clone());
        }
    }
    super::lint::drop_widenings(&mut migrations, dialect);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!(dir = %dir.display(), %format, migrations = migrations.len(), "set loaded");
    let mut set = MigrationSet::new(migrations)?;
    if !texts.is_empty() {
        set = set.with_text_order(&texts);
    }
    Ok(set
        .with_baselines(baselines)?
        .with_warnings(warnings)
        .with_format(format))
}

impl From<DuplicateVersion> for CatalogError {
    fn from(d: DuplicateVersion) -> Self {
        Self::DuplicateVersion {
            version: d.version,
            first: d.first,
            second: d.second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn loads_reversible_and_single_file_formats_in_numeric_order() {
        let dir = dir_with(&[
            ("10_later.up.sql", "SELECT 10;"),
            ("10_later.down.sql", "SELECT -10;"),
            ("2_single.sql", "SELECT 2;"),
            ("README.md", "not a migration"),
        ]);
        let set = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap();
        let versions: Vec<i64> = set.iter().filter_map(|m| m.version.as_i64()).collect();
        assert_eq!(versions, [2, 10]);
        assert!(set.get(2).unwrap().down.is_none());
        assert_eq!(set.get(10).unwrap().name, "later");
        assert_eq!(set.latest(), Some(10.into()));
    }

    /// The sample sets are what a newcomer copies: every `up` lints clean, with no note
    /// (every statement parses) and no lock hazard or data rewrite, so `avocet plan` on each
    /// shows no finding (issue 32, item 9).
    #[test]
    fn the_sample_sets_lint_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for (dir, dialect) in [
            ("postgres", DialectKind::Postgres),
            ("mysql", DialectKind::Mysql),
            ("sqlite", DialectKind::Sqlite),
        ] {
            let set = load_dir(&root.join(dir), dialect, SetFormat::Auto).unwrap();
            assert_eq!(set.len(), 16, "{dir}");
            let findings: Vec<String> = set
                .iter()
                .flat_map(|m| {
                    m.up.findings
                        .iter()
                        .map(move |f| format!("{dir} {} line {}: {:?}", m.version, f.line, f.code))
                })
                .collect();
            assert!(findings.is_empty(), "{findings:#?}");
        }
    }

    #[test]
    fn duplicate_versions_and_bad_names_are_errors_naming_the_file() {
        let dir = dir_with(&[("1_a.up.sql", "SELECT 1;"), ("0001_b.sql", "SELECT 1;")]);
        let err = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap_err();
        assert!(matches!(
            err,
            CatalogError::DuplicateVersion { ref version, .. } if *version == 1
        ));
        assert!(err.to_string().contains("0001_b.sql"), "{err}");

        let dir = dir_with(&[("first.up.sql", "SELECT 1;")]);
        let err = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap_err();
        assert!(err.to_string().contains("first.up.sql"), "{err}");

        let dir = dir_with(&[("3_x.down.sql", "SELECT 1;")]);
        let err = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap_err();
        assert!(matches!(
            err,
            CatalogError::DownWithoutUp { version, .. } if version == 3
        ));
    }

    #[test]
    fn unreadable_and_untokenisable_files_are_errors_naming_the_file() {
        let dir = dir_with(&[("1_a.up.sql", "SELECT 'unterminated;")]);
        let err = load_dir(dir.path(), DialectKind::Postgres, SetFormat::Auto).unwrap_err();
        assert!(err.to_string().contains("1_a.up.sql"), "{err}");
        std::fs::write(dir.path().join("1_a.up.sql"), [0xff, 0xfe, 0x00]).unwrap();
        let err = load_dir(dir.path(), DialectKind::Postgres, SetFormat::Auto).unwrap_err();
        assert!(matches!(err, CatalogError::Io { .. }), "{err}");
    }

    #[test]
    fn files_that_look_like_migrations_are_warned_about() {
        let dir = dir_with(&[
            ("1_a.up.sql", "SELECT 1;"),
            ("2_b.UP.SQL", "SELECT 2;"),
            ("3_c.up.sql.bak", "SELECT 3;"),
            ("4_d.up.sq", "SELECT 4;"),
            ("README.md", "notes"),
            ("notes.txt", "notes"),
        ]);
        let set = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap();
        assert_eq!(set.len(), 1);
        let named: Vec<&str> = ["2_b.UP.SQL", "3_c.up.sql.bak", "4_d.up.sq"].to_vec();
        assert_eq!(set.warnings().len(), 3, "{:?}", set.warnings());
        for (w, file) in set.warnings().iter().zip(named) {
            assert!(
                w.contains(file) && w.contains("looks like a migration"),
                "{w}"
            );
        }
    }

    /// Issue 25, finding 8: a link out of the set is refused at load, naming the file; a
    /// link to a file of the set is fine.
    #[test]
    fn symlinks_out_of_the_set_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.sql");
        std::fs::write(&secret, "SELECT 'CANARY';").unwrap();
        let dir = dir_with(&[("1_a.sql", "SELECT 1;")]);
        std::os::unix::fs::symlink(dir.path().join("1_a.sql"), dir.path().join("2_b.sql")).unwrap();
        assert_eq!(
            load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto)
                .unwrap()
                .len(),
            2
        );
        std::os::unix::fs::symlink(&secret, dir.path().join("3_link.sql")).unwrap();
        let err = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap_err();
        assert!(matches!(err, CatalogError::Outside { .. }), "{err}");
        assert!(err.to_string().contains("3_link.sql"), "{err}");
    }

    /// Issue 25, finding 11: a file above max_migration_bytes (16 MiB by default) is
    /// refused with an error naming it and the limit.
    #[test]
    fn files_above_the_size_limit_are_refused() {
        let big = format!("-- {}\nSELECT 1;\n", "x".repeat(17 << 20));
        let dir = dir_with(&[("1_a.sql", "SELECT 1;"), ("2_big.sql", &big)]);
        let err = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap_err();
        assert!(matches!(err, CatalogError::TooLarge { .. }), "{err}");
        assert!(
            err.to_string().contains("2_big.sql")
                && err.to_string().contains("max_migration_bytes"),
            "{err}"
        );
    }

    /// Issue 25, finding 7: statements whose trees are 35,000 and 100,000 deep, loaded on
    /// a thread with a runtime worker's 2 MiB stack, are `unparsed` notes.
    #[test]
    fn deep_statements_are_unparsed_on_a_small_stack() {
        let terms = vec!["1"; 35_000].join(" + ");
        let ors: Vec<String> = (0..100_000).map(|i| format!("id = {i}")).collect();
        let dir = dir_with(&[
            ("1_a.sql", &format!("SELECT {terms};")),
            (
                "2_b.sql",
                &format!("DELETE FROM t WHERE {};", ors.join(" OR ")),
            ),
        ]);
        let path = dir.path().to_owned();
        let set = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || load_dir(&path, DialectKind::Postgres, SetFormat::Auto).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(set.len(), 2);
        let wide = set.get(2).unwrap();
        assert!(
            wide.up
                .findings
                .iter()
                .any(|f| f.code == crate::model::LintCode::Unparsed),
            "{:?}",
            wide.up.findings
        );
    }
}
