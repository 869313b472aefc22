//! dbmate's layout: one `<version>_<name>.sql` file per migration (the version: its leading
//! digits) holding a `-- migrate:up` section and an optional `-- migrate:down` section; a
//! marker followed by `transaction:false` runs its section outside a transaction. Each
//! section is the whole file with the other section's lines blanked, so errors name the
//! file's own lines. As with dbmate, an empty `down` section is a rollback that runs nothing.

use std::path::Path;

use super::{Found, FoundScript, Listing, MigrationSource, entries, integer_version, read_text};
use crate::{catalog::CatalogError, model::SetFormat};

pub(super) struct Dbmate;

const UP: &str = "-- migrate:up";
const DOWN: &str = "-- migrate:down";

/// True when a line of `text` opens dbmate's `up` section.
pub(super) fn has_up_marker(text: &str) -> bool {
    text.lines().any(|l| l.trim_end().starts_with(UP))
}

/// `transaction:false` among a marker line's options.
fn no_transaction(marker_line: &str) -> bool {
    marker_line
        .split_whitespace()
        .skip(2)
        .any(|o| o == "transaction:false")
}

/// The file's text with every line outside `range` (0-based line numbers) blanked.
fn section(text: &str, range: std::ops::Range<usize>) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| match range.contains(&i) {
            true => line,
            false if line.ends_with('\n') => "\n",
            false => "",
        })
        .collect()
}

impl MigrationSource for Dbmate {
    fn read(&self, dir: &Path) -> Result<Listing, CatalogError> {
        let mut listing = Listing::default();
        for entry in entries(dir)? {
            let path = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            if !path.is_file() || !file.ends_with(".sql") {
                continue;
            }
            let digits: String = file.chars().take_while(char::is_ascii_digit).collect();
            let version = integer_version(&digits).ok_or_else(|| {
                super::refuse(
                    &path,
                    SetFormat::Dbmate,
                    "file names are <version>_<name>.sql, the version digits",
                )
            })?;
            let name = file[digits.len()..]
                .trim_start_matches('_')
                .trim_end_matches(".sql")
                .to_owned();
            let text = read_text(&path)?;
            let lines: Vec<&str> = text.lines().collect();
            let find = |marker: &str| lines.iter().position(|l| l.trim_end().starts_with(marker));
            let up = find(UP).ok_or_else(|| {
                super::refuse(&path, SetFormat::Dbmate, "no `-- migrate:up` line")
            })?;
            let down = find(DOWN);
            if down.is_some_and(|d| d < up) {
                return Err(super::refuse(
                    &path,
                    SetFormat::Dbmate,
                    "`-- migrate:down` comes before `-- migrate:up`",
                ));
            }
            let up_end = down.unwrap_or(lines.len());
            listing.found.push(Found {
                version: version.into(),
                name,
                up: FoundScript {
                    path: path.clone(),
                    text: section(&text, up..up_end),
                    no_transaction: no_transaction(lines[up]),
                },
                unordered: false,
                down: down.map(|d| FoundScript {
                    path: path.clone(),
                    text: section(&text, d..lines.len()),
                    no_transaction: no_transaction(lines[d]),
                }),
            });
        }
        Ok(listing)
    }
}
