//! The databases' own tools: which one each dialect uses, where it is found (the fleet's
//! `tools_dir`, else `PATH`), its version, and the check at start for fleets whose policy
//! takes backups.

use std::path::{Path, PathBuf};

use super::BackupError;
use crate::{
    config::BackupConfig,
    model::{BackupWhen, DialectKind},
};

/// What a tool does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// Writes a backup file.
    Dump,
    /// Reads one back into the tenant.
    Restore,
}

/// The executable names a dialect's `job` may use, preferred first; empty for SQLite, whose
/// backup and restore run on the daemon's own connection (`VACUUM INTO`, `ATTACH`).
pub(crate) fn names(dialect: DialectKind, job: Job) -> &'static [&'static str] {
    match (dialect, job) {
        (DialectKind::Postgres, Job::Dump) => &["pg_dump"],
        (DialectKind::Postgres, Job::Restore) => &["pg_restore"],
        (DialectKind::Mysql, Job::Dump) => &["mariadb-dump", "mysqldump"],
        (DialectKind::Mysql, Job::Restore) => &["mariadb", "mysql"],
        (DialectKind::Sqlite, _) => &[],
    }
}

/// The Debian package that holds a dialect's tools, for the error naming what to install.
pub(crate) fn package(dialect: DialectKind) -> &'static str {
    match dialect {
        DialectKind::Postgres => "postgresql-client",
        DialectKind::Mysql => "mariadb-client",
        DialectKind::Sqlite => "sqlite3",
    }
}

/// A tool found on disk.
#[derive(Debug, Clone)]
pub(crate) struct Tool {
    /// Its executable's name (`pg_dump`).
    pub(crate) name: &'static str,
    /// Where it is.
    pub(crate) path: PathBuf,
}

/// The first of `dialect`'s tools for `job` found in `policy.tools_dir`, else on `PATH`;
/// `None` for SQLite.
///
/// # Errors
/// [`BackupError::ToolMissing`] naming the tools looked for, where, and the package.
pub(crate) fn find(
    dialect: DialectKind,
    job: Job,
    policy: &BackupConfig,
) -> Result<Option<Tool>, BackupError> {
    let names = names(dialect, job);
    if names.is_empty() {
        return Ok(None);
    }
    let dirs: Vec<PathBuf> = match &policy.tools_dir {
        Some(dir) => vec![dir.clone()],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default(),
    };
    for name in names {
        if let Some(path) = dirs.iter().map(|d| d.join(name)).find(|p| executable(p)) {
            return Ok(Some(Tool { name, path }));
        }
    }
    Err(BackupError::ToolMissing {
        tools: names.join(" or "),
        looked_in: match &policy.tools_dir {
            Some(dir) => dir.display().to_string(),
            None => "PATH".into(),
        },
        package: package(dialect),
    })
}

/// True for a file with an execute bit.
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Tool versions read, by path and modification time: one `--version` per tool install,
/// not one per backup.
static VERSIONS: std::sync::Mutex<Vec<(PathBuf, Option<std::time::SystemTime>, String)>> =
    std::sync::Mutex::new(Vec::new());

/// The first line `tool --version` prints (`pg_dump (PostgreSQL) 16.4`), or `unknown`; read
/// again when the file changed.
pub(crate) async fn version(tool: &Tool) -> String {
    let modified = std::fs::metadata(&tool.path)
        .and_then(|m| m.modified())
        .ok();
    let known = |v: &Vec<(PathBuf, Option<std::time::SystemTime>, String)>| {
        v.iter()
            .find(|(p, m, _)| *p == tool.path && *m == modified && m.is_some())
            .map(|(_, _, v)| v.clone())
    };
    if let Some(v) = known(&VERSIONS.lock().unwrap_or_else(|e| e.into_inner())) {
        return v;
    }
    let read = read_version(tool).await;
    let mut versions = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
    versions.retain(|(p, _, _)| *p != tool.path);
    versions.push((tool.path.clone(), modified, read.clone()));
    read
}

/// Runs `tool --version`.
async fn read_version(tool: &Tool) -> String {
    let out = tokio::process::Command::new(&tool.path)
        .arg("--version")
        .env_clear()
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(10), out).await {
        Ok(Ok(out)) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map_or_else(|| "unknown".into(), |l| l.trim().to_owned()),
        _ => "unknown".into(),
    }
}

/// Checks at start that every fleet whose policy takes backups (`when` other than `never`)
/// has its dialect's dump and restore tools.
///
/// # Errors
/// [`BackupError::FleetTool`] naming the first fleet without one, the tools and the package.
pub(crate) fn check_fleets<'a>(
    fleets: impl Iterator<Item = (&'a str, DialectKind, &'a BackupConfig)>,
) -> Result<(), BackupError> {
    for (fleet, dialect, policy) in fleets {
        if policy.when == BackupWhen::Never {
            continue;
        }
        for job in [Job::Dump, Job::Restore] {
            if let Err(e) = find(dialect, job, policy) {
                return Err(BackupError::FleetTool {
                    fleet: fleet.to_owned(),
                    when: policy.when.as_str(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(())
}
