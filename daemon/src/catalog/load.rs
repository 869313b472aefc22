//! Reading a migration set from a directory.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{ScriptError, parse_script};
use crate::model::{DialectKind, DuplicateVersion, Migration, MigrationSet, Script};

/// Why a migration set could not be loaded. Every variant names the file or version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {path}: {source}")]
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
        /// The version.
        version: i64,
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
        version: i64,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Up,
    Down,
    Single,
}

struct Parsed {
    version: i64,
    name: String,
    kind: Kind,
}

/// Parses `0003_add_users.up.sql` into (3, `add_users`, Up). `None` for names that do not
/// fit; files that do not end in `.sql` are not migrations and are skipped by the caller.
fn parse_name(file: &str) -> Option<Parsed> {
    let stem = file.strip_suffix(".sql")?;
    let (stem, kind) = if let Some(s) = stem.strip_suffix(".up") {
        (s, Kind::Up)
    } else if let Some(s) = stem.strip_suffix(".down") {
        (s, Kind::Down)
    } else {
        (stem, Kind::Single)
    };
    let (version, name) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    let version: i64 = version.parse().ok().filter(|v| *v > 0)?;
    Some(Parsed {
        version,
        name: name.to_owned(),
        kind,
    })
}

fn read_script(path: &Path, dialect: DialectKind) -> Result<Script, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_script(&text, dialect).map_err(|source| CatalogError::Script {
        path: path.to_owned(),
        source,
    })
}

/// Loads every `*.sql` file directly inside `dir` (subdirectories and other files are
/// ignored) and tokenises it with `dialect`.
///
/// # Errors
/// [`CatalogError`] naming the file: unreadable directory or file, a bad file name, a
/// duplicate version, a down script without an up script, or a script that does not tokenise.
pub(crate) fn load_dir(dir: &Path, dialect: DialectKind) -> Result<MigrationSet, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut ups: BTreeMap<i64, (PathBuf, String)> = BTreeMap::new();
    let mut downs: BTreeMap<i64, PathBuf> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    let mut warnings = Vec::new();
    for entry in entries {
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        if !path.is_file() {
            continue;
        }
        if !file.ends_with(".sql") {
            if looks_like_a_migration(&file) {
                warnings.push(format!(
                    "{} looks like a migration but is not read: files are \
                     <version>_<name>.up.sql, .down.sql or .sql, in lowercase",
                    path.display()
                ));
            }
            continue;
        }
        let parsed =
            parse_name(&file).ok_or_else(|| CatalogError::BadFileName { path: path.clone() })?;
        let duplicate = |other: &Path| CatalogError::DuplicateVersion {
            version: parsed.version,
            first: other.display().to_string(),
            second: path.display().to_string(),
        };
        if parsed.kind == Kind::Down {
            if let Some(other) = downs.get(&parsed.version) {
                return Err(duplicate(other));
            }
            downs.insert(parsed.version, path);
        } else {
            if let Some((other, _)) = ups.get(&parsed.version) {
                return Err(duplicate(other));
            }
            ups.insert(parsed.version, (path, parsed.name));
        }
    }
    if let Some((version, path)) = downs.iter().find(|(v, _)| !ups.contains_key(v)) {
        return Err(CatalogError::DownWithoutUp {
            path: path.clone(),
            version: *version,
        });
    }
    let mut migrations = Vec::with_capacity(ups.len());
    for (version, (path, name)) in ups {
        let down = match downs.get(&version) {
            Some(p) => Some(read_script(p, dialect)?),
            None => None,
        };
        migrations.push(Migration {
            version,
            name,
            up: read_script(&path, dialect)?,
            down,
        });
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(MigrationSet::new(migrations)?.with_warnings(warnings))
}

/// A file name that is not a migration's but looks meant to be one: an `.sql` extension in
/// another case or with something after it (`0004_a.UP.SQL`, `0004_a.up.sql.bak`), or a
/// version and name with a near-miss extension (`0004_a.up.sq`, `0004_a.psql`).
fn looks_like_a_migration(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    if lower.contains(".sql") {
        return true;
    }
    let versioned = file
        .split_once('_')
        .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    versioned
        && [".up", ".down", ".sq", "sql"]
            .iter()
            .any(|x| lower.contains(x))
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
        let set = load_dir(dir.path(), DialectKind::Sqlite).unwrap();
        let versions: Vec<i64> = set.iter().map(|m| m.version).collect();
        assert_eq!(versions, [2, 10]);
        assert!(set.get(2).unwrap().down.is_none());
        assert_eq!(set.get(10).unwrap().name, "later");
        assert_eq!(set.latest(), Some(10));
    }

    #[test]
    fn duplicate_versions_and_bad_names_are_errors_naming_the_file() {
        let dir = dir_with(&[("1_a.up.sql", "SELECT 1;"), ("0001_b.sql", "SELECT 1;")]);
        let err = load_dir(dir.path(), DialectKind::Sqlite).unwrap_err();
        assert!(matches!(
            err,
            CatalogError::DuplicateVersion { version: 1, .. }
        ));
        assert!(err.to_string().contains("0001_b.sql"), "{err}");

        let dir = dir_with(&[("first.up.sql", "SELECT 1;")]);
        let err = load_dir(dir.path(), DialectKind::Sqlite).unwrap_err();
        assert!(err.to_string().contains("first.up.sql"), "{err}");

        let dir = dir_with(&[("3_x.down.sql", "SELECT 1;")]);
        let err = load_dir(dir.path(), DialectKind::Sqlite).unwrap_err();
        assert!(matches!(
            err,
            CatalogError::DownWithoutUp { version: 3, .. }
        ));
    }

    #[test]
    fn unreadable_and_untokenisable_files_are_errors_naming_the_file() {
        let dir = dir_with(&[("1_a.up.sql", "SELECT 'unterminated;")]);
        let err = load_dir(dir.path(), DialectKind::Postgres).unwrap_err();
        assert!(err.to_string().contains("1_a.up.sql"), "{err}");
        std::fs::write(dir.path().join("1_a.up.sql"), [0xff, 0xfe, 0x00]).unwrap();
        let err = load_dir(dir.path(), DialectKind::Postgres).unwrap_err();
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
        let set = load_dir(dir.path(), DialectKind::Sqlite).unwrap();
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
}
