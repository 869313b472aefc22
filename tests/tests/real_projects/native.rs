//! The native run: a project's files in its tool's own order, each sent by the database's
//! own client as the tool sends it. Each tool's rules are written here from the tool's
//! source, not taken from Avocet, so that the comparison holds Avocet against the tool:
//!
//! | tool | order | a file is sent | outside a transaction |
//! | --- | --- | --- | --- |
//! | diesel (`diesel_migrations`, `migration_harness.rs`, `file_based_migrations.rs`) | the directory's prefix before `_`, dashes removed, compared as text | `up.sql` whole, in one request (`batch_execute`), in a transaction | `run_in_transaction = false` in `metadata.toml` |
//! | golang-migrate (`migrate.go`, `source/parse.go`, `database/postgres`) | the version before `_`, as an unsigned number | whole, in one request (`Exec`), without a transaction of its own | always |
//! | Flyway (`MigrationVersion`, baseline migrations) | dotted versions part by part; on an empty database the newest `B` file first, then the `V` files above it | statement by statement (Flyway parses the file), in a transaction on PostgreSQL | `executeInTransaction=false` in a `.sql.conf` beside it; MariaDB DDL always |
//! | dbmate (`db.go` `FindMigrations`, `migration.go`) | the file name, as text | each `-- migrate:up` block whole, in one request (`Exec`), in a transaction | `transaction:false` after the block's marker |
//!
//! Rolling back runs the `down` files newest first: diesel stops at a migration without
//! `down.sql` (`NoMigrationRevertFile`), golang-migrate skips a version without a down file,
//! dbmate runs a file's `down` blocks in file order. Flyway has no `down` files here.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use avocet_daemon::{DialectKind, model::SetFormat};
use avocet_tests::clients::{self, Batching};

/// One request the native run sends.
#[derive(Debug)]
pub(crate) struct Step {
    /// The file it comes from, for errors.
    pub(crate) file: PathBuf,
    /// The version as the tool writes it (`20240313170000`, `1.12.3`).
    pub(crate) version: String,
    pub(crate) sql: String,
    pub(crate) send: Batching,
    pub(crate) transaction: bool,
}

/// What a project's `down` files allow: every applied version rolled back, or the newest
/// ones down to (not including) the newest version without a usable `down` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Every version has its `down`.
    Everything,
    /// Versions above this one (as the tool writes it) have their `down`; it has none.
    DownTo(String),
    /// The tool has no `down` files at all.
    Nothing,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn sql_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && name.ends_with(".sql") {
            files.push((name, entry.path()));
        }
    }
    Ok(files)
}

/// diesel: `(version, directory)` of every migration directory, in diesel's order.
fn diesel_dirs(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') && entry.path().join("up.sql").is_file()
        {
            let version = name.split('_').next().unwrap_or_default().replace('-', "");
            dirs.push((version, entry.path()));
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn diesel_in_transaction(dir: &Path) -> anyhow::Result<bool> {
    let metadata = dir.join("metadata.toml");
    Ok(!metadata.is_file()
        || !read(&metadata)?
            .lines()
            .any(|l| l.replace(' ', "") == "run_in_transaction=false"))
}

/// golang-migrate: `(version, up file, down file)` ascending by version.
fn golang_files(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf, Option<PathBuf>)>> {
    let mut ups = Vec::new();
    let mut downs = std::collections::BTreeMap::new();
    for (name, path) in sql_files(dir)? {
        let Some((version, rest)) = name.split_once('_') else {
            continue;
        };
        let Ok(version) = version.parse::<u64>() else {
            continue;
        };
        if rest.ends_with(".up.sql") {
            ups.push((version, path));
        } else if rest.ends_with(".down.sql") {
            downs.insert(version, path);
        }
    }
    ups.sort();
    Ok(ups
        .into_iter()
        .map(|(v, up)| (v, up, downs.remove(&v)))
        .collect())
}

/// Flyway's version of `text` (`1_12_3` or `1.12.3`): its parts, trailing zeros dropped so
/// that `1.0` is `1` as Flyway compares them.
fn flyway_version(text: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = text
        .split(['.', '_'])
        .map(|p| p.parse().unwrap_or_default())
        .collect();
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    parts
}

/// Flyway: what runs on an empty database, in order: the newest `B` file, then the `V`
/// files above it (every `V` file when there is no `B`).
fn flyway_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut versioned = Vec::new();
    let mut baselines = Vec::new();
    for (name, path) in sql_files(dir)? {
        let Some((version, _)) = name[1..].split_once("__") else {
            continue;
        };
        let entry = (flyway_version(version), version.replace('_', "."), path);
        match name.as_bytes()[0] {
            b'V' => versioned.push(entry),
            b'B' => baselines.push(entry),
            _ => {}
        }
    }
    versioned.sort();
    baselines.sort();
    let start = baselines.pop();
    let floor = start.as_ref().map(|b| b.0.clone());
    Ok(start
        .into_iter()
        .chain(
            versioned
                .into_iter()
                .filter(|v| floor.as_ref().is_none_or(|f| v.0 > *f)),
        )
        .map(|(_, text, path)| (text, path))
        .collect())
}

fn flyway_in_transaction(file: &Path) -> anyhow::Result<bool> {
    let conf = file.with_extension("sql.conf");
    Ok(!conf.is_file()
        || !read(&conf)?
            .lines()
            .any(|l| l.replace(' ', "") == "executeInTransaction=false"))
}

/// dbmate's `-- migrate:up` / `-- migrate:down` marker and its options.
fn dbmate_marker<'a>(line: &'a str, which: &str) -> Option<&'a str> {
    let tail = line
        .strip_prefix("--")?
        .trim_start()
        .strip_prefix("migrate:")?
        .strip_prefix(which)?;
    (tail.trim().is_empty() || tail.starts_with(char::is_whitespace)).then_some(tail)
}

/// dbmate: each section's `(up block, its transaction, down block, its transaction)`.
fn dbmate_sections(text: &str) -> Vec<(String, bool, String, bool)> {
    let mut sections = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(options) = dbmate_marker(line, "up") {
            let tx = !options.contains("transaction:false");
            sections.push((String::new(), tx, String::new(), true, false));
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        if let Some(options) = dbmate_marker(line, "down") {
            section.3 = !options.contains("transaction:false");
            section.4 = true;
        }
        match section.4 {
            false => section.0.push_str(line),
            true => section.2.push_str(line),
        }
    }
    sections
        .into_iter()
        .map(|(up, utx, down, dtx, _)| (up, utx, down, dtx))
        .collect()
}

fn dbmate_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files: Vec<(String, PathBuf)> = sql_files(dir)?
        .into_iter()
        .filter(|(name, _)| name.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    files.sort();
    Ok(files)
}

fn dbmate_version(name: &str) -> String {
    name.chars().take_while(char::is_ascii_digit).collect()
}

/// How `dialect`'s client gets a file a tool sends whole: PostgreSQL's in one request;
/// MariaDB's and SQLite's split by the client (their servers take several statements per
/// request and run them one after the other alike).
fn whole(dialect: DialectKind) -> Batching {
    match dialect {
        DialectKind::Postgres => Batching::OneRequest,
        _ => Batching::Statements,
    }
}

/// The `up` requests of the project in `dir`, in `format`'s order, for an empty database.
pub(crate) fn ups(
    format: SetFormat,
    dir: &Path,
    dialect: DialectKind,
) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    match format {
        SetFormat::Diesel => {
            for (version, d) in diesel_dirs(dir)? {
                steps.push(Step {
                    sql: read(&d.join("up.sql"))?,
                    file: d.join("up.sql"),
                    version,
                    send: whole(dialect),
                    transaction: diesel_in_transaction(&d)?,
                });
            }
        }
        SetFormat::GolangMigrate => {
            for (version, up, _) in golang_files(dir)? {
                steps.push(Step {
                    sql: read(&up)?,
                    file: up,
                    version: version.to_string(),
                    send: whole(dialect),
                    transaction: false,
                });
            }
        }
        SetFormat::Flyway => {
            for (version, file) in flyway_files(dir)? {
                steps.push(Step {
                    sql: read(&file)?,
                    transaction: dialect != DialectKind::Mysql && flyway_in_transaction(&file)?,
                    file,
                    version,
                    send: Batching::Statements,
                });
            }
        }
        SetFormat::Dbmate => {
            for (name, file) in dbmate_files(dir)? {
                for (up, transaction, _, _) in dbmate_sections(&read(&file)?) {
                    steps.push(Step {
                        sql: up,
                        file: file.clone(),
                        version: dbmate_version(&name),
                        send: whole(dialect),
                        transaction,
                    });
                }
            }
        }
        other => bail!("no native run for {other}"),
    }
    Ok(steps)
}

/// The `down` requests that roll the project in `dir` back as far as its `down` files
/// allow, newest first, and how far that is.
pub(crate) fn downs(
    format: SetFormat,
    dir: &Path,
    dialect: DialectKind,
) -> anyhow::Result<(Vec<Step>, Reach)> {
    let mut steps = Vec::new();
    let mut reach = Reach::Everything;
    match format {
        SetFormat::Diesel => {
            for (version, d) in diesel_dirs(dir)?.into_iter().rev() {
                let down = d.join("down.sql");
                if !down.is_file() {
                    reach = Reach::DownTo(version);
                    break;
                }
                steps.push(Step {
                    sql: read(&down)?,
                    file: down,
                    version,
                    send: whole(dialect),
                    transaction: diesel_in_transaction(&d)?,
                });
            }
        }
        SetFormat::GolangMigrate => {
            // golang-migrate runs nothing for a version without a down file and goes on;
            // Avocet refuses such a rollback, so both stop above the newest such version.
            for (version, _, down) in golang_files(dir)?.into_iter().rev() {
                let Some(down) = down else {
                    reach = Reach::DownTo(version.to_string());
                    break;
                };
                steps.push(Step {
                    sql: read(&down)?,
                    file: down,
                    version: version.to_string(),
                    send: whole(dialect),
                    transaction: false,
                });
            }
        }
        SetFormat::Dbmate => {
            for (name, file) in dbmate_files(dir)?.into_iter().rev() {
                for (_, _, down, transaction) in dbmate_sections(&read(&file)?) {
                    steps.push(Step {
                        sql: down,
                        file: file.clone(),
                        version: dbmate_version(&name),
                        send: whole(dialect),
                        transaction,
                    });
                }
            }
        }
        _ => reach = Reach::Nothing,
    }
    Ok((steps, reach))
}

/// Where the native client reaches the tenant: a server URL or a SQLite file.
pub(crate) enum Target<'a> {
    Postgres(&'a str),
    Mariadb(&'a str),
    Sqlite(&'a Path),
}

/// Sends `steps` in order, each in its own client run, stopping at the first that fails:
/// the time the client runs took altogether, and the failing step's version with its error
/// (naming its file).
/// `init` runs first in every client session (a project's session settings, e.g.
/// `SET FOREIGN_KEY_CHECKS = 0`; MariaDB and SQLite only).
pub(crate) fn run_until_failure(
    steps: &[Step],
    target: &Target<'_>,
    init: &str,
) -> (Duration, Option<(String, anyhow::Error)>) {
    let mut spent = Duration::ZERO;
    for step in steps {
        let started = Instant::now();
        let ran = match target {
            Target::Postgres(dsn) => clients::psql_run(dsn, &step.sql, step.send, step.transaction),
            Target::Mariadb(dsn) => clients::mariadb_run(dsn, &format!("{init}\n{}", step.sql)),
            Target::Sqlite(db) => {
                let sql = match step.transaction {
                    true => format!("{init}\nBEGIN;\n{}\n;COMMIT;\n", step.sql),
                    false => format!("{init}\n{}", step.sql),
                };
                clients::sqlite3_run(db, &sql)
            }
        };
        spent += started.elapsed();
        if let Err(e) = ran {
            let e = e.context(format!("native run of {}", step.file.display()));
            return (spent, Some((step.version.clone(), e)));
        }
    }
    (spent, None)
}

#[test]
fn flyway_versions_compare_as_flyway_compares_them() {
    assert!(flyway_version("1_12_10") > flyway_version("1_12_2"));
    assert_eq!(flyway_version("1.0"), flyway_version("1"));
    assert!(flyway_version("1.20.1") > flyway_version("1.20"));
}
