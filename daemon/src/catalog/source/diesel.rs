//! diesel's layout: one directory per migration, `<version>_<name>/` holding `up.sql`, an
//! optional `down.sql` and an optional `metadata.toml` whose `run_in_transaction = false`
//! moves the migration out of its transaction. As diesel does, the version is the
//! directory name before its first `_` with the dashes removed, so
//! `2024-03-13-170000_create_users` and `2024-03-13-170000-0000_…` are versions
//! 20240313170000 and 202403131700000000, and diesel's `00000000000000_diesel_initial_setup`
//! is version 0. They order as diesel orders them, by that text
//! ([`VersionOrder::Text`](crate::model::VersionOrder::Text)): diesel's `MigrationVersion`
//! is a string, so `2025-12-29-110242-0000` runs before `2026-01-20-162913`.

use std::path::Path;

use super::{Found, FoundScript, Listing, MigrationSource, entries, integer_version, read_text};
use crate::{catalog::CatalogError, model::SetFormat};

pub(super) struct Diesel;

/// `metadata.toml` as diesel reads it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default = "yes")]
    run_in_transaction: bool,
}

fn yes() -> bool {
    true
}

impl MigrationSource for Diesel {
    fn read(&self, dir: &Path) -> Result<Listing, CatalogError> {
        let mut listing = Listing::default();
        for entry in entries(dir)? {
            let path = entry.path();
            if !path.is_dir() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .contains(".sql")
                {
                    listing.warnings.push(format!(
                        "{} looks like a migration but is not read: diesel migrations are \
                         directories <version>_<name>/ holding up.sql",
                        path.display()
                    ));
                }
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let up = path.join("up.sql");
            if !up.is_file() {
                listing.warnings.push(format!(
                    "{} is not read: a diesel migration directory holds up.sql",
                    path.display()
                ));
                continue;
            }
            let (version, title) = name.split_once('_').unwrap_or((&name, ""));
            let digits: String = version.chars().filter(|c| *c != '-').collect();
            let number = integer_version(&digits).ok_or_else(|| {
                super::refuse(
                    &path,
                    SetFormat::Diesel,
                    "the directory must be named <version>_<name>, the version digits and \
                     dashes (2024-03-13-170000) that fit a 64-bit integer",
                )
            })?;
            let metadata = path.join("metadata.toml");
            let in_transaction = match metadata.is_file() {
                true => {
                    toml::from_str::<Metadata>(&read_text(&metadata)?)
                        .map_err(|e| super::refuse(&metadata, SetFormat::Diesel, e.to_string()))?
                        .run_in_transaction
                }
                false => true,
            };
            let script = |path: std::path::PathBuf| -> Result<FoundScript, CatalogError> {
                Ok(FoundScript {
                    text: read_text(&path)?,
                    path,
                    no_transaction: !in_transaction,
                })
            };
            let down = path.join("down.sql");
            listing.found.push(Found {
                version: number.into(),
                name: title.to_owned(),
                up: script(up)?,
                unordered: false,
                baseline: false,
                text: Some(digits),
                down: match down.is_file() {
                    true => Some(script(down)?),
                    false => None,
                },
            });
        }
        Ok(listing)
    }
}
