//! Flyway's and refinery's layout: `V<version>__<description>.sql`. Flyway also reads
//! `U<version>__….sql` as the undo (`down`) script of that version, and a properties file
//! `V<version>__….sql.conf` beside a script, whose `executeInTransaction=false` runs it
//! outside a transaction; refinery's directive is a `-- refinery:noTransaction` line.
//!
//! Flyway's versions are dotted (`V1.2.3`; `V1_2` is `1.2`) and order part by part
//! ([`Version`]); refinery's are integers. refinery's `U<version>__<name>.sql` is an
//! unversioned migration: it runs in version order but may run below the newest applied
//! version ([`crate::model::Migration::unordered`]). Flyway's repeatable
//! `R__<description>.sql` migrations are keyed `R__<description>`
//! ([`MigrationKey::Repeatable`]): they run after every versioned migration, again whenever their
//! checksum changes, and a `.sql.conf` beside one is read as for a versioned script.
//! Flyway's baseline migrations `B<version>__<description>.sql` stand for every versioned
//! migration up to their version: on a tenant with no history the newest one runs instead
//! of them (`plan::pending`); on one with history they are ignored.

use std::{collections::BTreeMap, path::Path};

use super::{Found, FoundScript, Listing, MigrationSource, entries, integer_version, read_text};
use crate::{
    catalog::CatalogError,
    model::{MigrationKey, SetFormat, Version},
};

/// `flyway`: Flyway's rules; else refinery's.
pub(super) struct Prefixed {
    pub(super) flyway: bool,
}

const REFINERY_NO_TRANSACTION: &str = "-- refinery:noTransaction";

/// True for `V…__….sql`, `U…__….sql`, `B…__….sql` and `R__….sql` names.
pub(super) fn looks_prefixed(file: &str) -> bool {
    let Some(rest) = file.strip_prefix(['V', 'U', 'B', 'R']) else {
        return false;
    };
    file.ends_with(".sql")
        && rest.split_once("__").is_some_and(|(v, _)| {
            v.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
        })
}

/// True when a line of `text` is refinery's no-transaction directive.
pub(super) fn has_refinery_marker(text: &str) -> bool {
    text.lines().any(|l| l.trim() == REFINERY_NO_TRANSACTION)
}

impl Prefixed {
    /// The version in a file name as the tool reads it: Flyway's `1_2` is `1.2`
    /// (`MigrationVersion.fromVersion`), refinery's must be an integer.
    fn version(&self, text: &str) -> Result<Version, String> {
        if self.flyway {
            return text
                .replace('_', ".")
                .parse()
                .map_err(|e| format!("version {e}"));
        }
        integer_version(text)
            .map(Version::from)
            .ok_or_else(|| format!("version {text:?} is not an integer, as refinery requires"))
    }

    fn format(&self) -> SetFormat {
        match self.flyway {
            true => SetFormat::Flyway,
            false => SetFormat::Refinery,
        }
    }

    /// Whether the script at `path` runs outside a transaction by its format's directive.
    fn no_transaction(&self, path: &Path, text: &str) -> Result<bool, CatalogError> {
        if !self.flyway {
            return Ok(has_refinery_marker(text));
        }
        let conf = path.with_extension("sql.conf");
        if !conf.is_file() {
            return Ok(false);
        }
        for line in read_text(&conf)?.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("executeInTransaction", v)) => return Ok(v.eq_ignore_ascii_case("false")),
                _ => tracing::warn!("{}: {line:?} is not read by Avocet", conf.display()),
            }
        }
        Ok(false)
    }
}

/// Refuses two repeatables whose descriptions differ only in ASCII case or in underscores
/// written for spaces (`R__Views.sql`, `R__views.sql`, `R__my_views.sql`, `R__my views.sql`):
/// Flyway reads `_` as a space and refuses two repeatables with one description, and a MySQL
/// history table made by an earlier release compares text case-insensitively
/// (`utf8mb4_general_ci`), so both would share one row and run again at every apply.
fn refuse_case_twins(
    ups: &[(MigrationKey, String, std::path::PathBuf, String, bool)],
    format: SetFormat,
) -> Result<(), CatalogError> {
    let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
    for (version, _, path, _, _) in ups {
        let Some(name) = version.repeatable_name() else {
            continue;
        };
        let description = crate::model::flyway_description(name).to_ascii_lowercase();
        if let Some(other) = seen.insert(description, path) {
            let reason = format!(
                "its description differs only in case or underscores from {}'s (Flyway and \
                 MySQL would read both as one)",
                other.display()
            );
            return Err(super::refuse(path, format, reason));
        }
    }
    Ok(())
}

impl MigrationSource for Prefixed {
    fn read(&self, dir: &Path) -> Result<Listing, CatalogError> {
        let format = self.format();
        let mut ups = Vec::new();
        let mut undos: BTreeMap<Version, (std::path::PathBuf, String)> = BTreeMap::new();
        let mut baselines = Vec::new();
        let mut listing = Listing::default();
        for entry in entries(dir)? {
            let path = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            if !path.is_file() || file.ends_with(".sql.conf") {
                continue;
            }
            let baseline = file.starts_with('B');
            if !looks_prefixed(&file) || (baseline && !self.flyway) {
                if file.to_ascii_lowercase().contains(".sql") {
                    listing.warnings.push(format!(
                        "{} looks like a migration but is not read: {format} files are \
                         V<version>__<description>.sql",
                        path.display()
                    ));
                }
                continue;
            }
            let prefix = &file[..1];
            let (version, description) = file[1..]
                .trim_end_matches(".sql")
                .split_once("__")
                .unwrap_or_default();
            let version = match prefix {
                "R" if !self.flyway => Err("refinery has no repeatable (R__) migrations".into()),
                "R" if !version.is_empty() => Err("a repeatable is R__<description>.sql".into()),
                "R" => MigrationKey::repeatable(description).map_err(|e| e.to_string()),
                _ => self.version(version).map(MigrationKey::Versioned),
            }
            .map_err(|reason| super::refuse(&path, format, reason))?;
            let text = read_text(&path)?;
            match (prefix, &version) {
                ("B", _) => baselines.push((version, description.to_owned(), path, text)),
                ("U", MigrationKey::Versioned(undone)) if self.flyway => {
                    if let Some((other, _)) = undos.get(undone) {
                        return Err(CatalogError::DuplicateVersion {
                            first: other.display().to_string(),
                            second: path.display().to_string(),
                            version,
                        });
                    }
                    undos.insert(*undone, (path, text));
                }
                _ => ups.push((version, description.to_owned(), path, text, prefix == "U")),
            }
        }
        refuse_case_twins(&ups, format)?;
        for (version, name, path, text, unordered) in ups {
            let down = match version.version().and_then(|v| undos.remove(&v)) {
                Some((p, t)) => Some(FoundScript {
                    no_transaction: self.no_transaction(&p, &t)?,
                    path: p,
                    text: t,
                }),
                None => None,
            };
            listing.found.push(Found {
                version,
                name,
                up: FoundScript {
                    no_transaction: self.no_transaction(&path, &text)?,
                    path,
                    text,
                },
                down,
                unordered,
                baseline: false,
                text: None,
            });
        }
        // Flyway has no undo for a baseline migration: a `U` file undoes the `V` file.
        for (version, name, path, text) in baselines {
            listing.found.push(Found {
                version,
                name,
                up: FoundScript {
                    no_transaction: self.no_transaction(&path, &text)?,
                    path,
                    text,
                },
                down: None,
                unordered: false,
                baseline: true,
                text: None,
            });
        }
        if let Some((version, (path, _))) = undos.into_iter().next() {
            return Err(CatalogError::DownWithoutUp { path, version });
        }
        Ok(listing)
    }
}
