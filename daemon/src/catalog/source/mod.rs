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
    fs::DirEntry,
    path::{Path, PathBuf},
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
    pub(super) version: crate::model::Version,
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

/// The text of `path`.
///
/// # Errors
/// [`CatalogError::Io`] naming the file when it cannot be read or is not UTF-8.
pub(super) fn read_text(path: &Path) -> Result<String, CatalogError> {
    std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.to_owned(),
        source,
    })
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
