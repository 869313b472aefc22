//! `avocet new "add invoices"`: the next migration's files in the fleet's set, numbered and
//! named as the set already is.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Versions this long or longer are timestamps (`20240313170000`), not counters.
const TIMESTAMP_DIGITS: usize = 14;

/// How a set numbers and splits its migrations, read from its files.
struct Style {
    /// The highest version and the digits it is written with.
    latest: Option<(i64, usize)>,
    /// Reversible pairs (`.up.sql` and `.down.sql`) rather than one `.sql` file each.
    reversible: bool,
}

fn style(dir: &Path) -> anyhow::Result<Style> {
    let mut latest: Option<(i64, usize)> = None;
    let (mut pairs, mut singles) = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some((digits, rest)) = name.split_once('_') else {
            continue;
        };
        let Ok(version) = digits.parse::<i64>() else {
            continue;
        };
        if !rest.ends_with(".sql") {
            continue;
        }
        if rest.ends_with(".up.sql") || rest.ends_with(".down.sql") {
            pairs += 1;
        } else {
            singles += 1;
        }
        if latest.is_none_or(|(v, _)| version > v) {
            latest = Some((version, digits.len()));
        }
    }
    Ok(Style {
        latest,
        reversible: pairs >= singles,
    })
}

/// `add invoices` → `add_invoices`: lowercase ASCII letters and digits, `_` between words.
fn snake(description: &str) -> String {
    let words: Vec<String> = description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("_")
}

/// The next version: a counter one past the latest, padded as it is (4 digits for a new
/// set), or the current UTC time as `YYYYMMDDHHMMSS` when the set uses timestamps.
fn next_version(style: &Style) -> String {
    match style.latest {
        Some((_, digits)) if digits >= TIMESTAMP_DIGITS => {
            chrono::Utc::now().format("%Y%m%d%H%M%S").to_string()
        }
        Some((v, digits)) => format!("{:0digits$}", v + 1),
        None => format!("{:04}", 1),
    }
}

/// Writes the next migration's files for `description` into `dir` and returns their paths.
///
/// # Errors
/// When the description has no letter or digit, the directory cannot be read, or a file
/// exists already or cannot be written.
pub(crate) fn create(dir: &Path, description: &str) -> anyhow::Result<Vec<PathBuf>> {
    let name = snake(description);
    if name.is_empty() {
        bail!("the description {description:?} has no letter or digit to name the file with");
    }
    let style = style(dir)?;
    let version = next_version(&style);
    let header = format!("-- {description}\n");
    let files: Vec<(PathBuf, String)> = match style.reversible {
        true => vec![
            (dir.join(format!("{version}_{name}.up.sql")), header.clone()),
            (
                dir.join(format!("{version}_{name}.down.sql")),
                format!("-- undo: {description}\n"),
            ),
        ],
        false => vec![(dir.join(format!("{version}_{name}.sql")), header)],
    };
    for (path, _) in &files {
        if path.exists() {
            bail!("{} exists already", path.display());
        }
    }
    for (path, text) in &files {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_files_follow_the_sets_numbering_and_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0009_a.up.sql"), "").unwrap();
        std::fs::write(dir.path().join("0009_a.down.sql"), "").unwrap();
        let made = create(dir.path(), "Add invoices!").unwrap();
        let names: Vec<_> = made
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["0010_add_invoices.up.sql", "0010_add_invoices.down.sql"]
        );
        assert!(create(dir.path(), "?!").is_err());
        let single = tempfile::tempdir().unwrap();
        std::fs::write(single.path().join("20240313170000_a.sql"), "").unwrap();
        let made = create(single.path(), "b").unwrap();
        let name = made[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == "20240313170000_b.sql".len() && name.ends_with("_b.sql"),
            "{name}"
        );
        assert!(name.as_str() > "20240313170000_a.sql");
    }
}
