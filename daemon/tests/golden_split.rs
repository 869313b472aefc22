//! Golden-file tests of statement splitting (the format: `tests/split/README.md`): every
//! `tests/split/<dialect>/NAME.sql` is read by `parse_script` and its statements compared
//! exactly with `NAME.expected`, or its refusal (with line and column) with `NAME.error`.
//!
//! `AVOCET_BLESS=1 cargo test -p avocet-daemon --test golden_split` writes the expected
//! files from what the splitter does now; read the diff before committing it.

use std::path::{Path, PathBuf};

use avocet_daemon::{DialectKind, parse_script};

/// The line between two statements in a `.expected` file.
const SEPARATOR: &str = "\n-- ---\n";

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

/// What the splitter makes of `sql`, written as its golden file holds it, and that file's
/// extension.
fn outcome(sql: &str, dialect: DialectKind) -> (&'static str, String) {
    match parse_script(sql, dialect) {
        Ok(script) => {
            let statements: Vec<&str> = script.statements().collect();
            let mut text = statements.join(SEPARATOR);
            if !text.is_empty() {
                text.push('\n');
            }
            ("expected", text)
        }
        Err(e) => ("error", format!("{e}\n")),
    }
}

/// Both texts line by line: `-` the expected line, `+` the actual one, from the first line
/// where they differ.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let same = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let mut out = String::new();
    for line in &e[same.saturating_sub(3)..same] {
        out += &format!("   {line}\n");
    }
    for line in &e[same..] {
        out += &format!(" - {line}\n");
    }
    for line in &a[same..] {
        out += &format!(" + {line}\n");
    }
    out
}

#[test]
fn every_case_splits_exactly_as_its_golden_file_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/split");
    let bless = std::env::var_os("AVOCET_BLESS").is_some();
    let mut failures = Vec::new();
    let mut checked = 0;
    for dialect in [
        DialectKind::Postgres,
        DialectKind::Mysql,
        DialectKind::Sqlite,
    ] {
        for file in cases(&root.join(dialect.as_str())) {
            let sql = std::fs::read_to_string(&file).unwrap();
            let (kind, actual) = outcome(&sql, dialect);
            let golden = file.with_extension(kind);
            let other = file.with_extension(if kind == "error" { "expected" } else { "error" });
            if bless {
                std::fs::write(&golden, &actual).unwrap();
                let _ = std::fs::remove_file(&other);
                continue;
            }
            checked += 1;
            let name = file.strip_prefix(&root).unwrap().display().to_string();
            match std::fs::read_to_string(&golden) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{name}: statements differ from {kind} (- expected, + actual):\n{}",
                    diff(&expected, &actual)
                )),
                Err(_) if other.exists() => failures.push(format!(
                    "{name}: expected the outcome in {}, got this {kind}:\n{actual}",
                    other.display()
                )),
                Err(e) => failures.push(format!("{name}: {}: {e}", golden.display())),
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(bless || checked >= 22, "only {checked} golden cases found");
}
