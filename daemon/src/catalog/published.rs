//! A set given as files (path → bytes) rather than a directory: what `PublishSet` receives
//! and what the control store gives back. Each path is checked, then the files are laid out
//! in a private temporary directory and read by [`load_dir`] itself, so a set published and
//! the same directory loaded are parsed by the same code into the same set, with the same
//! digest and the same refusals; errors name the set's own paths, never the temporary one.

use std::path::{Path, PathBuf};

use super::{CatalogError, load_dir};
use crate::model::{DialectKind, MigrationSet, SetFormat};

/// One file of a set given as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetFile {
    /// Its path inside the set, `/`-separated and relative (`2_users.up.sql`,
    /// `2024-01-01-000000_users/up.sql`).
    pub(crate) path: String,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
}

/// Why a file's path is refused: the sentence that follows the path in an error.
///
/// Rules (issue 30): no empty path or component, no `.` or `..` component, no absolute path
/// (`/…`, `\…`, `C:…`), no NUL, no backslash, at most 1024 bytes and 2 levels (a diesel
/// migration's directory and its file: deeper files would never be read).
pub(crate) fn path_refusal(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("an empty path");
    }
    if path.len() > 1024 {
        return Some("a path above 1024 bytes");
    }
    if path.contains('\0') {
        return Some("a path with a NUL byte");
    }
    if path.starts_with('/') || path.as_bytes().get(1) == Some(&b':') {
        return Some("an absolute path: paths are relative to the set");
    }
    if path.contains('\\') {
        return Some("a path with a backslash: separate directories with /");
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.contains(&"..") {
        return Some("a path with a .. component");
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Some("a path with an empty or . component");
    }
    if parts.len() > 2 {
        return Some("a path deeper than a directory and its file");
    }
    None
}

/// Loads the set made of `files` as [`load_dir`] loads a directory holding them: the same
/// format detection, splitting, lint and digest.
///
/// # Errors
/// [`CatalogError`] as [`load_dir`], naming the file by its path in the set;
/// [`CatalogError::Format`] for a path [`path_refusal`] refuses, for two files with one
/// path or a file where another uses the name as a directory, and for a file that is not
/// UTF-8; [`CatalogError::Io`] when the temporary directory cannot be written.
pub(crate) fn load_files(
    files: &[SetFile],
    dialect: DialectKind,
    format: SetFormat,
) -> Result<MigrationSet, CatalogError> {
    let tmp = tempfile::Builder::new()
        .prefix("avocet-set-")
        .tempdir()
        .map_err(|source| CatalogError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let root = tmp.path();
    let refuse = |path: &str, reason: &str| CatalogError::Format {
        path: PathBuf::from(path),
        format,
        reason: reason.to_owned(),
    };
    for f in files {
        if let Some(why) = path_refusal(&f.path) {
            return Err(refuse(&f.path, why));
        }
        let target = root.join(&f.path);
        if let Some(parent) = target.parent()
            && parent != root
        {
            if parent.is_file() {
                return Err(refuse(&f.path, "its directory is also a file of the set"));
            }
            std::fs::create_dir_all(parent).map_err(|source| CatalogError::Io {
                path: PathBuf::from(&f.path),
                source,
            })?;
        }
        if target.exists() {
            return Err(refuse(
                &f.path,
                "given twice, or also a directory of the set",
            ));
        }
        std::fs::write(&target, &f.bytes).map_err(|source| CatalogError::Io {
            path: PathBuf::from(&f.path),
            source,
        })?;
    }
    load_dir(root, dialect, format).map_err(|e| relative(e, root, format))
}

/// `e` naming each file by its path in the set rather than in `root`.
fn relative(e: CatalogError, root: &Path, format: SetFormat) -> CatalogError {
    let rel = |p: PathBuf| -> PathBuf {
        match p.strip_prefix(root) {
            Ok(r) if r.as_os_str().is_empty() => PathBuf::from("."),
            Ok(r) => r.to_owned(),
            Err(_) => p,
        }
    };
    let rel_text = |s: String| -> String {
        let prefix = format!("{}/", root.display());
        s.strip_prefix(&prefix).map(str::to_owned).unwrap_or(s)
    };
    match e {
        // A relative path in an I/O error would be read against the daemon's working
        // directory: this is a file of the set that could not be read (not UTF-8).
        CatalogError::Io { path, source } => CatalogError::Format {
            path: rel(path),
            format,
            reason: source.to_string(),
        },
        CatalogError::BadFileName { path } => CatalogError::BadFileName { path: rel(path) },
        CatalogError::DuplicateVersion {
            version,
            first,
            second,
        } => CatalogError::DuplicateVersion {
            version,
            first: rel_text(first),
            second: rel_text(second),
        },
        CatalogError::DownWithoutUp { path, version } => CatalogError::DownWithoutUp {
            path: rel(path),
            version,
        },
        CatalogError::Format {
            path,
            format,
            reason,
        } => CatalogError::Format {
            path: rel(path),
            format,
            reason,
        },
        CatalogError::Outside { path, reason } => CatalogError::Outside {
            path: rel(path),
            reason,
        },
        CatalogError::TooLarge { path, bytes, limit } => CatalogError::TooLarge {
            path: rel(path),
            bytes,
            limit,
        },
        CatalogError::Script { path, source } => CatalogError::Script {
            path: rel(path),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SetFile {
        SetFile {
            path: path.to_owned(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    /// The digest of files given as a tree is the digest of the same directory (sqlx and
    /// diesel layouts), and refusals name the set's own path.
    #[test]
    fn files_load_as_their_directory_does() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            file("1_a.up.sql", "CREATE TABLE a (id INT);"),
            file("1_a.down.sql", "DROP TABLE a;"),
            file("2_b.sql", "CREATE TABLE b (id INT);"),
        ];
        for f in &files {
            std::fs::write(dir.path().join(&f.path), &f.bytes).unwrap();
        }
        let from_dir = load_dir(dir.path(), DialectKind::Sqlite, SetFormat::Auto).unwrap();
        let from_files = load_files(&files, DialectKind::Sqlite, SetFormat::Auto).unwrap();
        assert_eq!(from_dir.digest(), from_files.digest());
        assert_eq!(from_files.format(), SetFormat::Sqlx);

        let diesel = [
            file("2024-01-01-000000_a/up.sql", "CREATE TABLE a (id INT);"),
            file("2024-01-01-000000_a/down.sql", "DROP TABLE a;"),
        ];
        let set = load_files(&diesel, DialectKind::Sqlite, SetFormat::Auto).unwrap();
        assert_eq!(set.format(), SetFormat::Diesel);

        let broken = [file("1_a.sql", "SELECT 'unterminated;")];
        let err = load_files(&broken, DialectKind::Postgres, SetFormat::Auto).unwrap_err();
        assert!(err.to_string().starts_with("1_a.sql: "), "{err}");
        let not_utf8 = [SetFile {
            path: "1_a.sql".into(),
            bytes: vec![0xff, 0xfe],
        }];
        let err = load_files(&not_utf8, DialectKind::Postgres, SetFormat::Auto).unwrap_err();
        assert!(err.to_string().starts_with("1_a.sql: "), "{err}");
    }

    #[test]
    fn paths_out_of_the_set_are_refused_naming_them() {
        for bad in [
            "../1_a.sql",
            "a/../../1_a.sql",
            "/etc/1_a.sql",
            "C:x.sql",
            "a\\b.sql",
            "a\0.sql",
            "",
            "./1_a.sql",
            "a//b.sql",
            "a/b/c.sql",
        ] {
            assert!(path_refusal(bad).is_some(), "{bad:?} accepted");
        }
        assert_eq!(path_refusal("1_a.up.sql"), None);
        assert_eq!(path_refusal("2024-01-01-000000_a/up.sql"), None);
        let err = load_files(
            &[file("../1_a.sql", "SELECT 1;")],
            DialectKind::Sqlite,
            SetFormat::Auto,
        )
        .unwrap_err();
        assert!(err.to_string().contains("../1_a.sql") && err.to_string().contains(".."));
        let twice = [file("1_a.sql", "SELECT 1;"), file("1_a.sql", "SELECT 2;")];
        let err = load_files(&twice, DialectKind::Sqlite, SetFormat::Auto).unwrap_err();
        assert!(err.to_string().contains("1_a.sql"), "{err}");
    }
}
