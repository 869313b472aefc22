//! Avocet's statement splitting held against the native clients: every golden case of
//! `daemon/tests/split` (see its README) that has a `.expected` file is run by the client
//! its dialect's users run (`psql`, `mariadb`, `sqlite3`) on a fresh database of its own,
//! and the number of statements that client executed must equal the number Avocet splits
//! the file into. How each client's count is read: `avocet_tests::clients`.
//!
//! A missing client fails the test with the package to install; nothing is skipped but
//! the cases marked `-- split-test: avocet-only` (named in the output).

use std::path::{Path, PathBuf};

use avocet_daemon::{DialectKind, parse_script};
use avocet_tests::{Fleet, clients};

/// The golden cases of `dialect` that the native client can run.
fn cases(dialect: DialectKind) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../daemon/tests/split")
        .join(dialect.as_str());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .filter(|p| p.with_extension("expected").exists())
        .collect();
    files.sort();
    files.retain(|p| {
        let text = std::fs::read_to_string(p).unwrap();
        let only = text.lines().next().unwrap_or_default();
        let keep = !only.starts_with("-- split-test: avocet-only");
        if !keep {
            println!("not run by the native client: {} ({only})", p.display());
        }
        keep
    });
    files
}

fn avocet_count(file: &Path, dialect: DialectKind) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    parse_script(&text, dialect)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .statements()
        .len()
}

/// Runs every case through `client` and asserts that each count agrees; `at_least` keeps
/// an emptied directory from passing.
async fn agree<F, Fut>(dialect: DialectKind, at_least: usize, client: F) -> anyhow::Result<()>
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let files = cases(dialect);
    assert!(
        files.len() >= at_least,
        "only {} {dialect:?} cases",
        files.len()
    );
    let mut rows = Vec::new();
    let mut disagree = 0;
    for file in files {
        let avocet = avocet_count(&file, dialect);
        let native = client(file.clone()).await?;
        disagree += usize::from(native != avocet);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        rows.push(format!("{name:40} client {native:3}  avocet {avocet:3}"));
    }
    println!("{dialect:?}:\n{}", rows.join("\n"));
    assert_eq!(disagree, 0, "counts differ:\n{}", rows.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_executes_as_many_statements_as_avocet_splits() -> anyhow::Result<()> {
    agree(DialectKind::Postgres, 6, |file| async move {
        let fleet = Fleet::postgres(1).await?;
        clients::psql_statements(&fleet.tenants[0].dsn, &file)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_client_executes_as_many_statements_as_avocet_splits() -> anyhow::Result<()> {
    agree(DialectKind::Mysql, 5, |file| async move {
        let fleet = Fleet::mysql(1).await?;
        clients::mariadb_statements(&fleet.tenants[0].dsn, &file)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite3_shell_executes_as_many_statements_as_avocet_splits() -> anyhow::Result<()> {
    agree(DialectKind::Sqlite, 3, |file| async move {
        let dir = tempfile::tempdir()?;
        clients::sqlite3_statements(&dir.path().join("case.db"), &file)
    })
    .await
}
