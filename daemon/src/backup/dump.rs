//! One backup file of one tenant, written by its database's own tool: PostgreSQL `pg_dump
//! -Fc` (`--schema` for a schema tenant), MySQL/MariaDB `mariadb-dump`/`mysqldump
//! --single-transaction --routines --triggers`, SQLite `VACUUM INTO` on a connection of the
//! daemon. The DSN's credentials reach a tool through its environment (`PGPASSWORD`,
//! `MYSQL_PWD`), never its arguments, and the tool starts with an otherwise empty
//! environment. The file is written beside its final name and renamed once complete and
//! hashed, so a file under a backup's name is always whole.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    str::FromStr,
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{
    BackupError,
    tools::{self, Job, Tool},
};
use crate::{config::BackupConfig, dialect::Target, model::DialectKind};

/// A backup file, complete.
#[derive(Debug, Clone)]
pub(crate) struct Dumped {
    /// Its size, bytes.
    pub(crate) bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub(crate) sha256: String,
    /// The tool's name.
    pub(crate) tool: String,
    /// The tool's version.
    pub(crate) tool_version: String,
}

/// How a tool reaches a tenant: its arguments (no secret) and its environment (the
/// password).
pub(super) struct Connection {
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(&'static str, String)>,
}

/// The arguments and environment that connect `dialect`'s tools to `target`.
///
/// # Errors
/// [`BackupError::Dsn`] when the DSN does not parse as a URL.
pub(super) fn connection(dialect: DialectKind, target: &Target) -> Result<Connection, BackupError> {
    let url = url::Url::parse(&target.dsn).map_err(|_| BackupError::Dsn)?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let query = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| query("host"));
    let user = Some(decode(url.username()))
        .filter(|u| !u.is_empty())
        .or_else(|| query("user"));
    let password = url.password().map(decode).or_else(|| query("password"));
    let database = Some(decode(url.path().trim_start_matches('/')))
        .filter(|d| !d.is_empty())
        .or_else(|| query("dbname"));
    let mut c = Connection {
        args: Vec::new(),
        env: Vec::new(),
    };
    match dialect {
        DialectKind::Postgres => {
            let env = [
                ("PGHOST", host),
                ("PGPORT", url.port().map(|p| p.to_string())),
                ("PGUSER", user),
                ("PGPASSWORD", password),
                ("PGDATABASE", database),
                ("PGSSLMODE", query("sslmode").or_else(|| query("ssl-mode"))),
                ("PGSSLROOTCERT", query("sslrootcert")),
                ("PGAPPNAME", Some("avocetd-backup".into())),
            ];
            c.env = env.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
        }
        DialectKind::Mysql => {
            c.args.push("--protocol=TCP".into());
            c.args.push(format!(
                "--host={}",
                host.unwrap_or_else(|| "localhost".into())
            ));
            c.args
                .push(format!("--port={}", url.port().unwrap_or(3306)));
            if let Some(user) = user {
                c.args.push(format!("--user={user}"));
            }
            match query("ssl-mode").map(|m| m.to_ascii_uppercase()).as_deref() {
                Some("DISABLED") => c.args.push("--skip-ssl".into()),
                Some("REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY") => c.args.push("--ssl".into()),
                _ => {}
            }
            if let Some(password) = password {
                c.env.push(("MYSQL_PWD", password));
            }
            // The database comes last, where both tools take it.
            c.args.push(database.unwrap_or_default());
        }
        DialectKind::Sqlite => {}
    }
    Ok(c)
}

/// Writes `target`'s backup to `file` (which must not exist) with `dialect`'s tool, within
/// `policy.timeout`, and hashes it.
///
/// # Errors
/// [`BackupError::ToolMissing`], [`BackupError::Io`] when the directory or file cannot be
/// written, [`BackupError::ToolFailed`] with the tool's own words, [`BackupError::Timeout`];
/// no file is left under `file`'s name then.
pub(crate) async fn dump(
    dialect: DialectKind,
    target: &Target,
    policy: &BackupConfig,
    file: &Path,
) -> Result<Dumped, BackupError> {
    let partial = partial_of(file);
    let result = write(dialect, target, policy, &partial).await;
    let done = match result {
        Ok((tool, tool_version)) => match hash(&partial).await {
            Ok((bytes, sha256)) => tokio::fs::rename(&partial, file)
                .await
                .map_err(BackupError::io("naming the backup file", file))
                .map(|()| Dumped {
                    bytes,
                    sha256,
                    tool,
                    tool_version,
                }),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    done
}

/// `<file>.partial`.
fn partial_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Runs the dump into `out`; returns the tool's name and version.
async fn write(
    dialect: DialectKind,
    target: &Target,
    policy: &BackupConfig,
    out: &Path,
) -> Result<(String, String), BackupError> {
    if dialect == DialectKind::Sqlite {
        return vacuum_into(target, out, policy.timeout).await;
    }
    let tool = tools::find(dialect, Job::Dump, policy)?.ok_or(BackupError::Dsn)?;
    let version = tools::version(&tool).await;
    let conn = connection(dialect, target)?;
    let mut args: Vec<String> = Vec::new();
    match dialect {
        DialectKind::Postgres => {
            args.extend([
                "--format=custom".into(),
                format!("--file={}", out.display()),
            ]);
            if let Some(schema) = &target.schema {
                // An exact name: quoted, so pg_dump reads no pattern in it.
                args.push(format!("--schema=\"{schema}\""));
            }
        }
        _ => {
            args.extend(conn.args.iter().cloned());
            let database = args.pop().unwrap_or_default();
            args.extend([
                "--single-transaction".into(),
                "--routines".into(),
                "--triggers".into(),
                format!("--result-file={}", out.display()),
                database,
            ]);
        }
    }
    run(&tool, &args, &conn.env, None, policy.timeout).await?;
    Ok((tool.name.to_owned(), version))
}

/// Runs `tool` with `args`, `env` and, when given, `stdin` read from a file, within
/// `timeout`; kills it past the timeout.
///
/// # Errors
/// [`BackupError::ToolFailed`] with the end of its standard error when it exits non-zero or
/// cannot start; [`BackupError::Timeout`].
pub(super) async fn run(
    tool: &Tool,
    args: &[String],
    env: &[(&'static str, String)],
    stdin: Option<&Path>,
    timeout: Duration,
) -> Result<(), BackupError> {
    let mut command = tokio::process::Command::new(&tool.path);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match stdin {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(BackupError::io("opening the backup file", path))?;
            command.stdin(Stdio::from(file));
        }
        None => {
            command.stdin(Stdio::null());
        }
    }
    let failed = |message: String| BackupError::ToolFailed {
        tool: tool.name,
        message,
    };
    let child = command.spawn().map_err(|e| failed(e.to_string()))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.map_err(|e| failed(e.to_string()))?,
        Err(_) => {
            return Err(BackupError::Timeout {
                tool: tool.name,
                after_ms: timeout.as_millis() as u64,
            });
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let words: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = words[words.len().saturating_sub(3)..].join("; ");
    Err(failed(format!(
        "{} ({})",
        crate::model::redact_secrets(&tail),
        output.status
    )))
}

/// SQLite: `VACUUM INTO` on a connection of the daemon's own.
async fn vacuum_into(
    target: &Target,
    out: &Path,
    timeout: Duration,
) -> Result<(String, String), BackupError> {
    use sqlx::{Connection, Row};
    let work = async {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&target.dsn)?;
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        let version: String = sqlx::query("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await?
            .try_get(0)?;
        let done = sqlx::query("VACUUM INTO $1")
            .bind(out.display().to_string())
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        done.map(|_| version)
    };
    let failed = |e: sqlx::Error| BackupError::ToolFailed {
        tool: "VACUUM INTO",
        message: e.to_string(),
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(version)) => Ok(("sqlite VACUUM INTO".into(), format!("SQLite {version}"))),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(BackupError::Timeout {
            tool: "VACUUM INTO",
            after_ms: timeout.as_millis() as u64,
        }),
    }
}

/// The size and SHA-256 (lowercase hex) of `file`, read in 64 KiB chunks.
///
/// # Errors
/// [`BackupError::Io`] when it cannot be read.
pub(crate) async fn hash(file: &Path) -> Result<(u64, String), BackupError> {
    let io = BackupError::io("reading the backup file", file);
    let mut f = tokio::fs::File::open(file).await.map_err(&io)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(&io)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        sha.update(&buf[..n]);
    }
    Ok((bytes, hex::encode(sha.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dsn: &str) -> Target {
        Target {
            dsn: dsn.into(),
            schema: None,
            history_table: "avocet_migrations".into(),
            session_init: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            text_versions: false,
        }
    }

    #[test]
    fn the_password_goes_to_the_environment_decoded_and_never_to_the_arguments() {
        let pg = connection(
            DialectKind::Postgres,
            &target("postgres://app%40eu:p%40ss%2Fw0rd@db-1:6432/t%2D1?sslmode=require"),
        )
        .unwrap();
        assert!(pg.args.is_empty());
        let env: std::collections::BTreeMap<_, _> = pg.env.into_iter().collect();
        assert_eq!(env["PGPASSWORD"], "p@ss/w0rd");
        assert_eq!(env["PGUSER"], "app@eu");
        assert_eq!(
            (env["PGHOST"].as_str(), env["PGPORT"].as_str()),
            ("db-1", "6432")
        );
        assert_eq!(
            (env["PGDATABASE"].as_str(), env["PGSSLMODE"].as_str()),
            ("t-1", "require")
        );

        let my = connection(
            DialectKind::Mysql,
            &target("mysql://root:s3cr%3Bt@127.0.0.1/shop?ssl-mode=DISABLED"),
        )
        .unwrap();
        assert_eq!(my.env, [("MYSQL_PWD", "s3cr;t".to_owned())]);
        assert_eq!(
            my.args,
            [
                "--protocol=TCP",
                "--host=127.0.0.1",
                "--port=3306",
                "--user=root",
                "--skip-ssl",
                "shop"
            ]
        );
        assert!(my.args.iter().all(|a| !a.contains("s3cr")));
    }
}
