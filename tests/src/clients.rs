//! The native command-line clients (`psql`, `mariadb`, `sqlite3`) run on a migration file,
//! counting the statements each one actually executed, so a test can hold Avocet's
//! statement splitting against the client's. Each count is read from what the client or
//! server reports per statement, never from the file's text:
//!
//! - `psql`: with `\timing on`, psql prints one `Time: … ms` line for every query it sends
//!   (and query output goes to `/dev/null`), so the lines are counted.
//! - `mariadb`: the session's `Questions` status counts the statements a client sends
//!   (not those run inside routines or triggers). It is read before and after
//!   `source FILE` in one session; the client's own overhead (the second `SHOW`) is measured
//!   on an empty file and subtracted.
//! - `sqlite3`: `.trace FILE --profile` writes one `…; -- N ns` line when each statement the
//!   shell prepared (with `sqlite3_complete` deciding where its input ends, and
//!   `sqlite3_prepare` where each statement ends) has finished; trigger bodies get none.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use anyhow::{Context, bail};

/// Runs `program` with `args` and `stdin`, failing with the Debian package to install when
/// it is missing, and with its stderr when it exits unsuccessfully.
fn run(
    program: &str,
    package: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> anyhow::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "`{program}` is not installed: this test needs the native client; install the \
                 Debian package `{package}` (apt-get install {package})"
            ),
            _ => anyhow::Error::new(e).context(format!("starting {program}")),
        })?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr),
    );
    if !status.success() {
        bail!("{program} {args:?} failed ({status}):\n{stderr}\n{stdout}");
    }
    Ok(stdout)
}

/// The number of statements `psql` sends to the server when it runs `file` on the
/// PostgreSQL database at `dsn` (a `postgres://` URL), stopping at the first error.
///
/// # Errors
/// `psql` is missing, or the file failed on the server.
pub fn psql_statements(dsn: &str, file: &Path) -> anyhow::Result<usize> {
    let file = file.to_str().context("file path is not UTF-8")?;
    let out = run(
        "psql",
        "postgresql-client",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-o",
            "/dev/null",
            "-c",
            "\\timing on",
            "-f",
            file,
            dsn,
        ],
        &[],
        "",
    )?;
    Ok(out
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("Time:")
                && words.next().is_some_and(|n| n.parse::<f64>().is_ok())
                && words.next() == Some("ms")
        })
        .count())
}

/// The parts of a `mysql://user[:password]@host[:port]/database` URL, as client options.
fn mariadb_options(dsn: &str) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let rest = dsn.strip_prefix("mysql://").context("not a mysql:// URL")?;
    let (credentials, address) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = match credentials.split_once(':') {
        Some((u, p)) => (u, Some(p.to_owned())),
        None => (credentials, None),
    };
    let (host_port, database) = address.split_once('/').context("no database in URL")?;
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
    let database = database.split('?').next().unwrap_or_default();
    let options = vec![
        format!("--host={host}"),
        format!("--port={port}"),
        format!("--user={user}"),
        format!("--database={database}"),
        "--batch".into(),
        "--skip-column-names".into(),
    ];
    Ok((options, password))
}

/// `Questions` before and after the `mariadb` client sources `file` in one session.
fn questions_around(dsn: &str, file: &str) -> anyhow::Result<u64> {
    let (options, password) = mariadb_options(dsn)?;
    let args: Vec<&str> = options.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = password
        .as_deref()
        .map(|p| ("MYSQL_PWD", p))
        .into_iter()
        .collect();
    let script = format!(
        "SHOW SESSION STATUS LIKE 'Questions';\nsource {file}\nDELIMITER ;\n\
         SHOW SESSION STATUS LIKE 'Questions';\n"
    );
    let out = run("mariadb", "mariadb-client", &args, &env, &script)?;
    let counts: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Questions\t"))
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading Questions from:\n{out}"))?;
    match counts[..] {
        [before, .., after] if counts.len() >= 2 => Ok(after - before),
        _ => bail!("expected two Questions lines, got:\n{out}"),
    }
}

/// The number of statements the `mariadb` client sends to the server when it runs `file`
/// on the database at `dsn` (a `mysql://` URL), `DELIMITER` commands and all.
///
/// # Errors
/// `mariadb` is missing, or the file failed on the server.
pub fn mariadb_statements(dsn: &str, file: &Path) -> anyhow::Result<usize> {
    let empty = tempfile::NamedTempFile::new()?;
    let overhead = questions_around(dsn, empty.path().to_str().context("temp path")?)?;
    let total = questions_around(dsn, file.to_str().context("file path is not UTF-8")?)?;
    Ok(usize::try_from(total - overhead)?)
}

/// The number of statements the `sqlite3` shell executes when it reads `file` into the
/// database file `db`, stopping at the first error.
///
/// # Errors
/// `sqlite3` is missing, or the file failed.
pub fn sqlite3_statements(db: &Path, file: &Path) -> anyhow::Result<usize> {
    let trace = tempfile::NamedTempFile::new()?;
    let trace_path = trace.path().to_str().context("temp path")?;
    let file = file.to_str().context("file path is not UTF-8")?;
    run(
        "sqlite3",
        "sqlite3",
        &[
            "-bail",
            db.to_str().context("db path is not UTF-8")?,
            ".output /dev/null",
            &format!(".trace {trace_path} --profile"),
            &format!(".read {file}"),
        ],
        &[],
        "",
    )?;
    let traced = std::fs::read_to_string(trace.path())?;
    Ok(traced
        .lines()
        .filter(|l| {
            l.rsplit_once("; -- ").is_some_and(|(_, t)| {
                t.strip_suffix(" ns")
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            })
        })
        .count())
}

/// How a native client is given one migration file's SQL, as the tool the file belongs to
/// sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// The whole text in one request (diesel's `batch_execute`, golang-migrate's and
    /// dbmate's `Exec`): `psql -c`, which sends one simple query.
    OneRequest,
    /// Statement by statement, as the client splits the file (Flyway, which splits a file
    /// itself and runs its statements one by one): `psql -f`, `mariadb < file`.
    Statements,
}

/// Runs `sql` with `psql` on the PostgreSQL database at `dsn`, stopping at the first error;
/// `transaction` wraps it in one transaction (`-1`).
///
/// # Errors
/// `psql` is missing, or the SQL failed on the server.
pub fn psql_run(dsn: &str, sql: &str, send: Batching, transaction: bool) -> anyhow::Result<()> {
    let mut args = vec!["-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"];
    if transaction {
        args.push("-1");
    }
    let stdin = match send {
        Batching::OneRequest => {
            args.extend(["-c", sql]);
            ""
        }
        Batching::Statements => {
            args.extend(["-f", "-"]);
            sql
        }
    };
    args.push(dsn);
    run(
        "psql",
        "postgresql-client",
        &args,
        &[("PGOPTIONS", "--client-min-messages=warning")],
        stdin,
    )
    .map(drop)
}

/// Runs `sql` with the `mariadb` client on the database at `dsn` (a `mysql://` URL),
/// statement by statement as the client splits it, stopping at the first error.
///
/// # Errors
/// `mariadb` is missing, or the SQL failed on the server.
pub fn mariadb_run(dsn: &str, sql: &str) -> anyhow::Result<()> {
    let (options, password) = mariadb_options(dsn)?;
    let args: Vec<&str> = options.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = password
        .as_deref()
        .map(|p| ("MYSQL_PWD", p))
        .into_iter()
        .collect();
    run("mariadb", "mariadb-client", &args, &env, sql).map(drop)
}

/// Runs `sql` with the `sqlite3` shell on the database file `db`, stopping at the first
/// error.
///
/// # Errors
/// `sqlite3` is missing, or the SQL failed.
pub fn sqlite3_run(db: &Path, sql: &str) -> anyhow::Result<()> {
    let db = db.to_str().context("db path is not UTF-8")?;
    run("sqlite3", "sqlite3", &["-bail", db], &[], sql).map(drop)
}

/// The schema of the PostgreSQL database at `dsn` as `pg_dump --schema-only` writes it,
/// without the tables `exclude` names, comment lines and `pg_dump`'s per-run
/// `\restrict` keys.
///
/// # Errors
/// `pg_dump` is missing or failed.
pub fn pg_dump_schema(dsn: &str, exclude: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["--schema-only".to_owned()];
    args.extend(exclude.iter().map(|t| format!("--exclude-table={t}")));
    args.push(dsn.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dump = run("pg_dump", "postgresql-client", &args, &[], "")?;
    Ok(without_noise(&dump, &["--", "\\restrict", "\\unrestrict"]))
}

/// The schema of the MariaDB database at `dsn` as `mariadb-dump --no-data` writes it
/// (routines and triggers included), without the tables `exclude` names and comments.
///
/// # Errors
/// `mariadb-dump` is missing or failed.
pub fn mariadb_dump_schema(dsn: &str, exclude: &[&str]) -> anyhow::Result<String> {
    let (options, password) = mariadb_options(dsn)?;
    let database = options
        .iter()
        .find_map(|o| o.strip_prefix("--database="))
        .context("no database")?
        .to_owned();
    let mut args: Vec<String> = options
        .into_iter()
        .filter(|o| o.starts_with("--host") || o.starts_with("--port") || o.starts_with("--user"))
        .collect();
    args.extend(
        [
            "--no-data",
            "--routines",
            "--triggers",
            "--skip-comments",
            "--skip-dump-date",
        ]
        .map(String::from),
    );
    args.extend(
        exclude
            .iter()
            .map(|t| format!("--ignore-table={database}.{t}")),
    );
    args.push(database);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = password
        .as_deref()
        .map(|p| ("MYSQL_PWD", p))
        .into_iter()
        .collect();
    let dump = run("mariadb-dump", "mariadb-client", &args, &env, "")?;
    Ok(without_noise(&dump, &["--"]))
}

/// `text` less the lines starting with one of `prefixes` and runs of blank lines.
fn without_noise(text: &str, prefixes: &[&str]) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in text.lines() {
        if prefixes.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        let is_blank = line.trim().is_empty();
        if !(is_blank && blank) {
            out.push_str(line);
            out.push('\n');
        }
        blank = is_blank;
    }
    out
}
