//! sqlx's layout (Avocet's own) and golang-migrate's: `<version>_<name>.up.sql` with an
//! optional `<version>_<name>.down.sql`; sqlx also takes a one-file `<version>_<name>.sql`
//! without a `down`. Versions are positive integers ordered numerically. The no-transaction
//! markers (`-- no-transaction`, `-- avocet:no-transaction`) are read from the script itself.

use std::{collections::BTreeMap, path::Path};

use super::{Found, FoundScript, Listing, MigrationSource, entries, integer_version, read_text};
use crate::{catalog::CatalogError, model::SetFormat};

/// `single_file`: the one-file `<version>_<name>.sql` form is a migration (sqlx); without
/// it (golang-migrate) such a file is a bad name.
pub(super) struct Paired {
    pub(super) single_file: bool,
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
    let version = integer_version(version).filter(|v| *v > 0)?;
    if name.is_empty() {
        return None;
    }
    Some(Parsed {
        version,
        name: name.to_owned(),
        kind,
    })
}

impl MigrationSource for Paired {
    fn read(&self, dir: &Path) -> Result<Listing, CatalogError> {
        let mut ups: Vec<(Parsed, std::path::PathBuf)> = Vec::new();
        let mut downs: BTreeMap<i64, std::path::PathBuf> = BTreeMap::new();
        let mut warnings = Vec::new();
        for entry in entries(dir)? {
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
            let parsed = parse_name(&file)
                .filter(|p| self.single_file || p.kind != Kind::Single)
                .ok_or_else(|| self.bad_name(&path))?;
            if parsed.kind == Kind::Down {
                if let Some(other) = downs.get(&parsed.version) {
                    return Err(CatalogError::DuplicateVersion {
                        version: parsed.version.into(),
                        first: other.display().to_string(),
                        second: path.display().to_string(),
                    });
                }
                downs.insert(parsed.version, path);
            } else {
                ups.push((parsed, path));
            }
        }
        if let Some((version, path)) = downs
            .iter()
            .find(|(v, _)| !ups.iter().any(|(p, _)| p.version == **v))
        {
            return Err(CatalogError::DownWithoutUp {
                path: path.clone(),
                version: (*version).into(),
            });
        }
        let mut found = Vec::with_capacity(ups.len());
        for (parsed, path) in ups {
            let down = match downs.remove(&parsed.version) {
                Some(p) => Some(script(p)?),
                None => None,
            };
            found.push(Found {
                version: parsed.version.into(),
                name: parsed.name,
                up: script(path)?,
                down,
                unordered: false,
                baseline: false,
                text: None,
            });
        }
        Ok(Listing { found, warnings })
    }
}

impl Paired {
    fn bad_name(&self, path: &Path) -> CatalogError {
        match self.single_file {
            true => CatalogError::BadFileName {
                path: path.to_owned(),
            },
            false => super::refuse(
                path,
                SetFormat::GolangMigrate,
                "file names are <version>_<title>.up.sql and <version>_<title>.down.sql",
            ),
        }
    }
}

fn script(path: std::path::PathBuf) -> Result<FoundScript, CatalogError> {
    Ok(FoundScript {
        text: read_text(&path)?,
        path,
        no_transaction: false,
    })
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
