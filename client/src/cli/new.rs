//! `avocet new "add invoices"`: the next migration's files in the fleet's set, in its
//! tool's layout (sqlx, golang-migrate, diesel, dbmate, Flyway, refinery), numbered and
//! named as the set already is.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Versions this long or longer are timestamps (`20240313170000`), not counters.
const TIMESTAMP_DIGITS: usize = 14;

/// `reading DIR`, and for a relative directory the working directory it resolved against:
/// a fleet's directory as the daemon reports it is relative to the daemon's, which may not
/// be this one.
fn reading(dir: &Path) -> String {
    match (dir.is_relative(), std::env::current_dir()) {
        (true, Ok(cwd)) => format!(
            "reading {} (resolved against this working directory, {})",
            dir.display(),
            cwd.display()
        ),
        _ => format!("reading {}", dir.display()),
    }
}

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
    for entry in std::fs::read_dir(dir).with_context(|| reading(dir))? {
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

/// `add invoices` → `add_invoices`: lowercase ASCII letters and digits, `_` between words;
/// other letters transliterated (`ünïcode` → `unicode`, with the `deunicode` tables), so
/// no letter is dropped.
fn snake(description: &str) -> String {
    let ascii = deunicode::deunicode(description);
    let words: Vec<String> = ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("_")
}

/// Whether `description` names a migration: it holds a letter or digit (after
/// transliteration), so its file name is not empty.
pub(crate) fn has_name(description: &str) -> bool {
    !snake(description).is_empty()
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

/// The latest `V<version>__` of a Flyway or refinery set, and whether it has `U` undo files.
fn prefixed_latest(dir: &Path) -> anyhow::Result<(i64, bool)> {
    let (mut latest, mut undo) = (0, false);
    for entry in std::fs::read_dir(dir).with_context(|| reading(dir))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some((version, _)) = name.get(1..).and_then(|rest| rest.split_once("__")) else {
            continue;
        };
        undo |= name.starts_with('U');
        if let Ok(v) = version.parse::<i64>()
            && name.starts_with('V')
        {
            latest = latest.max(v);
        }
    }
    Ok((latest, undo))
}

/// The files of the next migration for `description` (`name` in snake case) in `format`'s
/// layout, with their first text: a comment naming it, and the tool's section markers.
fn files_for(
    dir: &Path,
    format: &str,
    name: &str,
    description: &str,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    // A file left like this is refused by the plan (`empty_migration`) until it has SQL.
    let template = "-- avocet:template\n-- (remove the line above once the SQL below is written)\n";
    let header = format!("{template}-- {description}\n");
    let undo = format!("{template}-- undo: {description}\n");
    let now = chrono::Utc::now();
    Ok(match format {
        "diesel" => {
            let sub = dir.join(format!("{}_{name}", now.format("%Y-%m-%d-%H%M%S")));
            vec![(sub.join("up.sql"), header), (sub.join("down.sql"), undo)]
        }
        "dbmate" => vec![(
            dir.join(format!("{}_{name}.sql", now.format("%Y%m%d%H%M%S"))),
            format!("-- migrate:up\n{header}\n-- migrate:down\n{undo}"),
        )],
        "flyway" | "refinery" => {
            let (latest, has_undo) = prefixed_latest(dir)?;
            let v = latest + 1;
            let mut files = vec![(dir.join(format!("V{v}__{name}.sql")), header)];
            if format == "flyway" && has_undo {
                files.push((dir.join(format!("U{v}__{name}.sql")), undo));
            }
            files
        }
        _ => {
            let style = style(dir)?;
            let version = next_version(&style);
            match style.reversible || format == "golang-migrate" {
                true => vec![
                    (dir.join(format!("{version}_{name}.up.sql")), header),
                    (dir.join(format!("{version}_{name}.down.sql")), undo),
                ],
                false => vec![(dir.join(format!("{version}_{name}.sql")), header)],
            }
        }
    })
}

/// A file or directory of `dir` whose migration name is `name` (`0020_add_invoices.up.sql`,
/// `V3__add_invoices.sql`, diesel's `2024-…_add_invoices/`), if any.
fn named(dir: &Path, name: &str) -> anyhow::Result<Option<String>> {
    for entry in std::fs::read_dir(dir).with_context(|| reading(dir))? {
        let file = entry?.file_name().to_string_lossy().into_owned();
        let stem = file
            .trim_end_matches(".sql")
            .trim_end_matches(".up")
            .trim_end_matches(".down");
        let rest = stem.split_once("__").or_else(|| stem.split_once('_'));
        if rest.is_some_and(|(_, n)| n == name) {
            return Ok(Some(file));
        }
    }
    Ok(None)
}

/// Writes the next migration's files for `description` into `dir`, laid out as `format`
/// (`sqlx` or empty: as the set already is; `golang-migrate`, `diesel`, `dbmate`, `flyway`,
/// `refinery`), and returns their paths.
///
/// # Errors
/// When the description has no letter or digit, the set has a migration of that name
/// already, the directory cannot be read, or a file exists already or cannot be written.
pub(crate) fn create(dir: &Path, description: &str, format: &str) -> anyhow::Result<Vec<PathBuf>> {
    let name = snake(description);
    if name.is_empty() {
        bail!("the description {description:?} has no letter or digit to name the file with");
    }
    if let Some(existing) = named(dir, &name)? {
        bail!(
            "the set has a migration named {name} already ({existing}): describe this one \
             differently"
        );
    }
    let files = files_for(dir, format, &name, description)?;
    for (path, _) in &files {
        if path.exists() {
            bail!("{} exists already", path.display());
        }
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
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
        let made = create(dir.path(), "Add invoices!", "sqlx").unwrap();
        let names: Vec<_> = made
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["0010_add_invoices.up.sql", "0010_add_invoices.down.sql"]
        );
        assert!(create(dir.path(), "?!", "sqlx").is_err());
        let again = create(dir.path(), "add invoices", "sqlx")
            .unwrap_err()
            .to_string();
        assert!(again.contains("named add_invoices already"), "{again}");
        assert_eq!(
            snake("Add Invoices: v2 / with ünïcode!"),
            "add_invoices_v2_with_unicode"
        );
        let single = tempfile::tempdir().unwrap();
        std::fs::write(single.path().join("20240313170000_a.sql"), "").unwrap();
        let made = create(single.path(), "b", "").unwrap();
        let name = made[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == "20240313170000_b.sql".len() && name.ends_with("_b.sql"),
            "{name}"
        );
        assert!(name.as_str() > "20240313170000_a.sql");
    }

    #[test]
    fn each_tools_layout_gets_its_own_files() {
        let names = |made: Vec<PathBuf>, dir: &Path| -> Vec<String> {
            made.iter()
                .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
                .collect()
        };
        let flyway = tempfile::tempdir().unwrap();
        std::fs::write(flyway.path().join("V7__a.sql"), "").unwrap();
        std::fs::write(flyway.path().join("U7__a.sql"), "").unwrap();
        let made = create(flyway.path(), "add b", "flyway").unwrap();
        assert_eq!(
            names(made, flyway.path()),
            ["V8__add_b.sql", "U8__add_b.sql"]
        );
        let made = create(flyway.path(), "add c", "refinery").unwrap();
        assert_eq!(names(made, flyway.path()), ["V9__add_c.sql"]);

        let diesel = tempfile::tempdir().unwrap();
        let made = create(diesel.path(), "add b", "diesel").unwrap();
        let made = names(made, diesel.path());
        assert!(
            made.len() == 2
                && made[0].ends_with("_add_b/up.sql")
                && made[1].ends_with("_add_b/down.sql"),
            "{made:?}"
        );
        assert_eq!(
            made[0].find('_'),
            Some("2024-03-13-170000".len()),
            "{made:?}"
        );

        let dbmate = tempfile::tempdir().unwrap();
        let made = create(dbmate.path(), "add b", "dbmate").unwrap();
        let text = std::fs::read_to_string(&made[0]).unwrap();
        assert!(text.starts_with("-- migrate:up\n") && text.contains("\n-- migrate:down\n"));

        let golang = tempfile::tempdir().unwrap();
        std::fs::write(golang.path().join("3_a.up.sql"), "").unwrap();
        let made = create(golang.path(), "b", "golang-migrate").unwrap();
        assert_eq!(names(made, golang.path()), ["4_b.up.sql", "4_b.down.sql"]);
    }
}
