//! Migration sets: loading a directory of scripts, checksums and statement splitting.
//!
//! Formats accepted in one directory (sqlx's, so sqlx projects move over unchanged):
//! `<version>_<name>.up.sql` with optional `<version>_<name>.down.sql`, or the one-file
//! `<version>_<name>.sql` (no `down`). Versions are positive integers ordered numerically.

mod load;
mod script;

use std::sync::Arc;

pub use load::{CatalogError, load_dir};
pub use script::{Script, ScriptError, checksum, normalise};

/// Which way a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// One versioned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The integer prefix of the file name; unique within a set.
    pub version: i64,
    /// The rest of the file name, e.g. `create_accounts`.
    pub name: String,
    /// The forward script; its checksum is the migration's checksum.
    pub up: Script,
    /// The reverse script, when the set has one.
    pub down: Option<Script>,
}

/// The ordered, immutable list of migrations one fleet follows.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    /// Sorted by version, ascending, no duplicates.
    migrations: Vec<Arc<Migration>>,
}

impl MigrationSet {
    /// Builds a set from migrations in any order.
    ///
    /// # Errors
    /// [`CatalogError::DuplicateVersion`] when two migrations share a version.
    pub fn new(mut migrations: Vec<Migration>) -> Result<Self, CatalogError> {
        migrations.sort_by_key(|m| m.version);
        if let Some(w) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(CatalogError::DuplicateVersion {
                version: w[0].version,
                first: w[0].name.clone(),
                second: w[1].name.clone(),
            });
        }
        Ok(Self {
            migrations: migrations.into_iter().map(Arc::new).collect(),
        })
    }

    /// All migrations, ascending by version.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Migration>> {
        self.migrations.iter()
    }

    /// The migration with `version`, if the set has it.
    pub fn get(&self, version: i64) -> Option<&Arc<Migration>> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// The highest version, or `None` for an empty set.
    pub fn latest(&self) -> Option<i64> {
        self.migrations.last().map(|m| m.version)
    }

    /// Number of migrations.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// True when the set has no migrations.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }
}
