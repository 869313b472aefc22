//! Migration sources: one reader per on-disk format behind [`MigrationSource`], each turning
//! a directory into [`Found`] migrations (paths, texts, no-transaction directives) that
//! `load.rs` parses, checksums and orders. A format is chosen by configuration or detected.
//!
//! | file | formats |
//! | --- | --- |
//! | `paired.rs` | sqlx (`<version>_<name>.up.sql`/`.down.sql` or `.sql`), golang-migrate |
//! | `diesel.rs` | diesel (`<version>_<name>/up.sql`, `down.sql`, `metadata.toml`) |
//! | `dbmate.rs` | dbmate (`-- migrate:up` / `-- migrate:down` sections in one file) |
//! | `prefixed.rs` | Flyway and refinery (`V<version>__<name>.sql`, Flyway's `U` undo files) |

mod dbmate;
mod diesel;
mod paired;
mod prefixed;

use std::{
    cell::RefCell,
    fs::DirEntry,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use super::CatalogError;
use crate::model::SetFormat;

/// One script as found on disk.
pub(super) struct FoundScript {
    /// The file it came from, for errors.
    pub(super) path: PathBuf,
    /// Its text as the file holds it (a dbmate section: the file with the other section's
    /// lines blanked, so line numbers stay the file's).
    pub(super) text: String,
    /// The format's own directive moves it out of the migration's transaction.
    pub(super) no_transaction: bool,
}

/// One migration as found on disk, before parsing.
pub(super) struct Found {
    pub(super) version: crate::model::MigrationKey,
    pub(super) name: String,
    pub(super) up: FoundScript,
    pub(super) down: Option<FoundScript>,
    /// refinery's unversioned (`U`) migration.
    pub(super) unordered: bool,
    /// Flyway's baseline (`B`) migration.
    pub(super) baseline: bool,
    /// The version as its tool writes it, for a format that orders versions as text
    /// (diesel: the directory's prefix without dashes, leading zeros kept).
    pub(super) text: Option<String>,
}

/// What a source found in a directory, in any order.
#[derive(Default)]
pub(super) struct Listing {
    pub(super) found: Vec<Found>,
    /// Files that look like migrations but are not read, one sentence each.
    pub(super) warnings: Vec<String>,
}

/// Reads one on-disk format.
pub(super) trait MigrationSource {
    /// Every migration in `dir`, with the format's transaction directives.
    ///
    /// # Errors
    /// [`CatalogError`] naming the file: unreadable, a name the format does not allow, a
    /// version the format parses but Avocet cannot hold, or a broken side file.
    fn read(&self, dir: &Path) -> Result<Listing, CatalogError>;
}

/// The reader of `format`; [`SetFormat::Auto`] is detected from `dir` first.
///
/// # Errors
/// [`CatalogError::Io`] when `dir` cannot be listed or a file read for detection.
pub(super) fn source(
    format: SetFormat,
    dir: &Path,
) -> Result<(SetFormat, Box<dyn MigrationSource>), CatalogError> {
    let format = match format {
        SetFormat::Auto => detect(dir)?,
        f => f,
    };
    let source: Box<dyn MigrationSource> = match format {
        SetFormat::Auto | SetFormat::Sqlx => Box::new(paired::Paired { single_file: true }),
        SetFormat::GolangMigrate => Box::new(paired::Paired { single_file: false }),
        SetFormat::Diesel => Box::new(diesel::Diesel),
        SetFormat::Dbmate => Box::new(dbmate::Dbmate),
        SetFormat::Flyway => Box::new(prefixed::Prefixed { flyway: true }),
        SetFormat::Refinery => Box::new(prefixed::Prefixed { flyway: false }),
    };
    Ok((format, source))
}

/// `format`, or for [`SetFormat::Auto`] the layout detected in `dir` (`sqlx`'s when `dir`
/// cannot be listed: loading the set then reports the error).
pub(crate) fn resolve(format: SetFormat, dir: &Path) -> SetFormat {
    match format {
        SetFormat::Auto => detect(dir).unwrap_or(SetFormat::Sqlx),
        f => f,
    }
}

/// The format of `dir`: `diesel` when a subdirectory holds `up.sql`; for `V…__….sql` files,
/// `refinery` when one carries `-- refinery:noTransaction`, else `flyway`; `dbmate` when a
/// `.sql` file has a `-- migrate:up` line; else `sqlx`.
fn detect(dir: &Path) -> Result<SetFormat, CatalogError> {
    let entries = entries(dir)?;
    if entries.iter().any(|e| e.path().join("up.sql").is_file()) {
        return Ok(SetFormat::Diesel);
    }
    let files: Vec<(String, PathBuf)> = entries
        .iter()
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    let prefixed: Vec<&PathBuf> = files
        .iter()
        .filter(|(name, _)| prefixed::looks_prefixed(name))
        .map(|(_, p)| p)
        .collect();
    if !prefixed.is_empty() {
        for path in prefixed {
            if prefixed::has_refinery_marker(&read_text(path)?) {
                return Ok(SetFormat::Refinery);
            }
        }
        return Ok(SetFormat::Flyway);
    }
    // A reversible pair is sqlx's (or golang-migrate's): no file needs reading.
    if files.iter().any(|(name, _)| name.ends_with(".up.sql")) {
        return Ok(SetFormat::Sqlx);
    }
    for (name, path) in &files {
        if name.ends_with(".sql") && dbmate::has_up_marker(&read_text(path)?) {
            return Ok(SetFormat::Dbmate);
        }
    }
    Ok(SetFormat::Sqlx)
}

/// The entries of `dir`, sorted by name.
pub(super) fn entries(dir: &Path) -> Result<Vec<DirEntry>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<DirEntry> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(DirEntry::file_name);
    Ok(entries)
}

/// Largest file a set may hold ([`set_max_migration_bytes`]; `[limits]
/// max_migration_bytes`, default 16 MiB).
static MAX_MIGRATION_BYTES: AtomicU64 = AtomicU64::new(crate::model::DEFAULT_MAX_MIGRATION_BYTES);

/// Sets the largest file a migration set may hold, for every set this process loads from
/// now on (the server sets it from `[limits] max_migration_bytes` before loading any).
pub(crate) fn set_max_migration_bytes(bytes: u64) {
    MAX_MIGRATION_BYTES.store(bytes, Ordering::Relaxed);
}

thread_local! {
    /// The canonical directory of the set being loaded on this thread ([`SetRoot`]).
    static SET_ROOT: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// While alive, every file [`read_text`] reads on this thread must resolve inside the
/// set's directory.
pub(super) struct SetRoot(());

impl SetRoot {
    /// Files read on this thread must be inside `dir` until the guard drops.
    ///
    /// # Errors
    /// [`CatalogError::Io`] when `dir` cannot be resolved.
    pub(super) fn enter(dir: &Path) -> Result<Self, CatalogError> {
        let root = dir.canonicalize().map_err(|source| CatalogError::Io {
            path: dir.to_owned(),
            source,
        })?;
        SET_ROOT.with(|r| *r.borrow_mut() = Some(root));
        Ok(Self(()))
    }
}

impl Drop for SetRoot {
    fn drop(&mut self) {
        SET_ROOT.with(|r| *r.borrow_mut() = None);
    }
}

/// The text of `path`: a regular file inside the set's directory once symbolic links are
/// followed (issue 25, finding 8: `ln -s /etc/shadow 0007_link.sql`), of at most
/// `max_migration_bytes` (finding 11), read no further than that.
///
/// # Errors
/// [`CatalogError::Io`] naming the file when it cannot be read or is not UTF-8;
/// [`CatalogError::Outside`] for a link out of the set or a file that is not regular;
/// [`CatalogError::TooLarge`] above the limit.
pub(super) fn read_text(path: &Path) -> Result<String, CatalogError> {
    use std::io::Read as _;
    let io = |source| CatalogError::Io {
        path: path.to_owned(),
        source,
    };
    let real = path.canonicalize().map_err(io)?;
    if let Some(root) = SET_ROOT.with(|r| r.borrow().clone())
        && !real.starts_with(&root)
    {
        return Err(CatalogError::Outside {
            path: path.to_owned(),
            reason: "a symbolic link out of the set's directory",
        });
    }
    let meta = std::fs::metadata(&real).map_err(io)?;
    if !meta.is_file() {
        return Err(CatalogError::Outside {
            path: path.to_owned(),
            reason: "not a regular file",
        });
    }
    let limit = MAX_MIGRATION_BYTES.load(Ordering::Relaxed);
    let too_large = |bytes| CatalogError::TooLarge {
        path: path.to_owned(),
        bytes,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut text = String::new();
    std::fs::File::open(&real)
        .map_err(io)?
        .take(limit.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > limit {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// A format-specific refusal naming the file.
pub(super) fn refuse(path: &Path, format: SetFormat, reason: impl Into<String>) -> CatalogError {
    CatalogError::Format {
        path: path.to_owned(),
        format,
        reason: reason.into(),
    }
}

/// A version of digits only, as an integer; `None` for anything else or one past `i64`.
pub(super) fn integer_version(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tool_rules_tests;
