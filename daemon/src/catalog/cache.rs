//! A migration set loaded once and kept until its directory changes. A change is noticed
//! cheaply: the directory's listing with each file's size and modification time (one
//! `readdir` and one `stat` per file) is compared with the listing the set was loaded from;
//! only a different listing reads and tokenises the files again.

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use super::{CatalogError, load_dir};
use crate::model::{DialectKind, LintPolicy, MigrationSet, SetFormat};

/// What the set was loaded from: (file name, size in bytes, modification time), sorted.
type Listing = Vec<(std::ffi::OsString, u64, Option<SystemTime>)>;

/// One fleet's set, reloaded only when its directory's listing changes.
#[derive(Default)]
pub(crate) struct SetCache {
    loaded: Mutex<Option<(Listing, Arc<MigrationSet>)>>,
}

impl SetCache {
    /// The set in `dir`, its findings judged by the fleet's `lint` policy, from memory when
    /// the directory has not changed since it was last loaded. A request pins the `Arc` it got: a reload never changes a set in use.
    ///
    /// # Errors
    /// [`CatalogError`] naming the directory or file, as [`load_dir`]; a failed load
    /// leaves the previous set cached, so fixing the file is enough.
    pub(crate) fn get(
        &self,
        dir: &Path,
        dialect: DialectKind,
        format: SetFormat,
        lint: &LintPolicy,
    ) -> Result<Arc<MigrationSet>, CatalogError> {
        let listing = listing(dir)?;
        if let Some((seen, set)) = &*self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
            && *seen == listing
        {
            return Ok(set.clone());
        }
        let set = Arc::new(load_dir(dir, dialect, format)?.with_lint(lint));
        *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = Some((listing, set.clone()));
        Ok(set)
    }
}

/// The listing of `dir` and of each directory directly inside it (diesel keeps each
/// migration in one), named `sub/file`.
fn listing(dir: &Path) -> Result<Listing, CatalogError> {
    let mut listing = Vec::new();
    list_into(dir, None, &mut listing)?;
    listing.sort();
    Ok(listing)
}

fn list_into(
    dir: &Path,
    prefix: Option<&std::ffi::OsStr>,
    listing: &mut Listing,
) -> Result<(), CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        let name = match prefix {
            Some(p) => Path::new(p).join(entry.file_name()).into_os_string(),
            None => entry.file_name(),
        };
        if meta.is_dir() && prefix.is_none() {
            list_into(&entry.path(), Some(&name), listing)?;
        }
        listing.push((name, meta.len(), meta.modified().ok()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_loaded_once_and_again_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_a.sql"), "SELECT 1;").unwrap();
        let cache = SetCache::default();
        let first = cache
            .get(
                dir.path(),
                DialectKind::Sqlite,
                SetFormat::Auto,
                &LintPolicy::default(),
            )
            .unwrap();
        let again = cache
            .get(
                dir.path(),
                DialectKind::Sqlite,
                SetFormat::Auto,
                &LintPolicy::default(),
            )
            .unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged directory was read again"
        );
        std::fs::write(dir.path().join("1_a.sql"), "SELECT 1; SELECT 2;").unwrap();
        let changed = cache
            .get(
                dir.path(),
                DialectKind::Sqlite,
                SetFormat::Auto,
                &LintPolicy::default(),
            )
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_ne!(first.digest(), changed.digest());
        std::fs::write(dir.path().join("2_b.sql"), "SELECT 'unterminated;").unwrap();
        assert!(
            cache
                .get(
                    dir.path(),
                    DialectKind::Sqlite,
                    SetFormat::Auto,
                    &LintPolicy::default()
                )
                .is_err()
        );
        std::fs::remove_file(dir.path().join("2_b.sql")).unwrap();
        let back = cache
            .get(
                dir.path(),
                DialectKind::Sqlite,
                SetFormat::Auto,
                &LintPolicy::default(),
            )
            .unwrap();
        assert_eq!(back.digest(), changed.digest());
    }
}
