//! dbmate's layout: one `<version>_<name>.sql` file per migration (the version: its leading
//! digits), read as dbmate 2 reads it (`pkg/dbmate/migration.go`):
//!
//! - a file is one or more sections, each opened by a `-- migrate:up` line (also `--migrate:up`,
//!   optionally followed by options) and holding at most one `-- migrate:down` line; only
//!   blank and comment lines may come before the first section;
//! - a section's `up` block runs from its `up` line to its `down` line, its `down` block from
//!   there to the next section; `transaction:false` after a marker runs that block outside a
//!   transaction;
//! - dbmate runs every section's `up` block in file order, and on rollback every section's
//!   `down` block, also in file order;
//! - files run in the order of their names, compared as text (`FindMigrations`), so
//!   `10_b.sql` runs before `9_a.sql`: the set is in
//!   [`VersionOrder::Text`](crate::model::VersionOrder::Text) by file name.
//!
//! Avocet runs a migration's `up` blocks as one script (outside a transaction when any of
//! them says `transaction:false`), and its `down` blocks likewise. Each script is the whole
//! file with the other blocks' lines blanked, so errors name the file's own lines. As with
//! dbmate, an empty `down` block is a rollback that runs nothing. dbmate 2 refuses a
//! section without a `down` block; Avocet reads such a file as a migration without a
//! `down` script, and says so in a warning.

use std::{ops::Range, path::Path};

use super::{Found, FoundScript, Listing, MigrationSource, entries, integer_version, read_text};
use crate::{catalog::CatalogError, model::SetFormat};

pub(super) struct Dbmate;

/// The options after a `-- migrate:up` or `-- migrate:down` marker, or `None` when `line`
/// is not that marker (dbmate's `^--\s*migrate:(up|down)(\s*$|\s+\S+)`).
fn marker<'a>(line: &'a str, which: &str) -> Option<&'a str> {
    let rest = line.strip_prefix("--")?.trim_start();
    let tail = rest.strip_prefix("migrate:")?.strip_prefix(which)?;
    (tail.trim().is_empty() || tail.starts_with(char::is_whitespace)).then_some(tail)
}

/// True when a line of `text` opens dbmate's `up` block.
pub(super) fn has_up_marker(text: &str) -> bool {
    text.lines().any(|l| marker(l, "up").is_some())
}

/// `transaction:false` among a marker's options (dbmate reads `key:value` pairs split on
/// whitespace; `transaction` is true unless its value is `false`).
fn no_transaction(options: &str) -> bool {
    options.split_whitespace().any(|o| {
        let pair: Vec<&str> = o.split(':').collect();
        pair == ["transaction", "false"]
    })
}

/// The file's text with every line outside `ranges` (0-based line numbers) blanked.
fn keep(text: &str, ranges: &[Range<usize>]) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| match ranges.iter().any(|r| r.contains(&i)) {
            true => line,
            false if line.ends_with('\n') => "\n",
            false => "",
        })
        .collect()
}

/// One section's blocks: line ranges and whether each runs outside a transaction.
struct Section {
    up: Range<usize>,
    up_no_transaction: bool,
    down: Option<(Range<usize>, bool)>,
}

/// The sections of a dbmate file, or why dbmate refuses it.
fn sections(lines: &[&str]) -> Result<Vec<Section>, &'static str> {
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| marker(lines[i], "up").is_some())
        .collect();
    let Some(&first) = starts.first() else {
        return Err("no `-- migrate:up` line");
    };
    let before = &lines[..first];
    if before
        .iter()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
    {
        return Err("statements before the first `-- migrate:up` line, which dbmate refuses");
    }
    if lines[..first].iter().any(|l| marker(l, "down").is_some()) {
        return Err("`-- migrate:down` comes before `-- migrate:up`");
    }
    let ends = starts.iter().skip(1).copied().chain([lines.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| {
            let downs: Vec<usize> = (start..end)
                .filter(|&i| marker(lines[i], "down").is_some())
                .collect();
            if downs.len() > 1 {
                return Err("a section with two `-- migrate:down` lines, which dbmate refuses");
            }
            let options = |i: usize, which| no_transaction(marker(lines[i], which).unwrap_or(""));
            Ok(Section {
                up: start..downs.first().copied().unwrap_or(end),
                up_no_transaction: options(start, "up"),
                down: downs.first().map(|&d| (d..end, options(d, "down"))),
            })
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
            let sections = sections(&lines)
                .map_err(|reason| super::refuse(&path, SetFormat::Dbmate, reason))?;
            let ups: Vec<Range<usize>> = sections.iter().map(|s| s.up.clone()).collect();
            let downs: Option<Vec<(Range<usize>, bool)>> =
                sections.iter().map(|s| s.down.clone()).collect();
            if downs.is_none() {
                listing.warnings.push(format!(
                    "{} has a `-- migrate:up` block without a `-- migrate:down` block, which \
                     dbmate 2 refuses (\"dbmate requires each migration to define a down block\"); \
                     Avocet reads it as a migration that cannot be rolled back",
                    path.display()
                ));
            }
            listing.found.push(Found {
                version: version.into(),
                name,
                up: FoundScript {
                    path: path.clone(),
                    text: keep(&text, &ups),
                    no_transaction: sections.iter().any(|s| s.up_no_transaction),
                },
                unordered: false,
                baseline: false,
                text: Some(file.clone()),
                down: downs.map(|downs| FoundScript {
                    path: path.clone(),
                    text: keep(
                        &text,
                        &downs.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
                    ),
                    no_transaction: downs.iter().any(|d| d.1),
                }),
            });
        }
        Ok(listing)
    }
}
