//! The tools compared: the psql floor, sqlx-cli and avocet builds; finding (or installing)
//! their binaries and building their per-tenant jobs.

pub(crate) mod avocet;
pub(crate) mod child;
pub(crate) mod pool;
pub(crate) mod strace;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use pool::Job;

use crate::cli::ToolKind;

/// An avocet build: a directory with `avocetd` and `avocet`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Build {
    /// Label in tables and JSON.
    pub(crate) label: String,
    /// The directory.
    pub(crate) dir: PathBuf,
    /// `<dir>/avocetd`.
    pub(crate) avocetd: PathBuf,
    /// `<dir>/avocet`.
    pub(crate) avocet: PathBuf,
    /// Git commit the build comes from, when it can be told.
    pub(crate) commit: Option<String>,
    /// Where `commit` comes from.
    pub(crate) commit_source: Option<String>,
    /// Whether `avocet status --help` lists `--refresh`.
    pub(crate) status_refresh: bool,
    /// Whether `avocet --help` lists `census`.
    pub(crate) census: bool,
    /// Whether `avocet sets --help` succeeds (sets published through the API).
    pub(crate) sets: bool,
}

/// One tool of a measurement.
#[derive(Debug, Clone)]
pub(crate) enum Tool {
    /// psql (or the dialect's native client).
    Floor,
    /// sqlx-cli at this path.
    Sqlx(PathBuf),
    /// An avocet build.
    Avocet(Build),
}

impl Tool {
    /// Column label.
    pub(crate) fn label(&self) -> String {
        match self {
            Tool::Floor => "floor".into(),
            Tool::Sqlx(_) => "sqlx-cli".into(),
            Tool::Avocet(b) => b.label.clone(),
        }
    }

    /// Whether this is an avocet build.
    pub(crate) fn is_avocet(&self) -> bool {
        matches!(self, Tool::Avocet(_))
    }

    /// Its family, as in `--tools`.
    pub(crate) fn kind(&self) -> ToolKind {
        match self {
            Tool::Floor => ToolKind::Floor,
            Tool::Sqlx(_) => ToolKind::Sqlx,
            Tool::Avocet(_) => ToolKind::Avocet,
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit of a git work tree, with `-dirty` when it has changes.
pub(crate) fn tree_commit(dir: &Path) -> Option<String> {
    let head = git(dir, &["rev-parse", "HEAD"])?;
    let dirty =
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// Resolves `--avocet` specs (default: `avocet=<default_dir>`) and checks the binaries.
pub(crate) fn builds(
    specs: &[String],
    default_dir: &Path,
    repo: &Path,
) -> anyhow::Result<Vec<Build>> {
    let mut pairs = Vec::new();
    for s in specs {
        pairs.push(crate::cli::parse_build(s)?);
    }
    if pairs.is_empty() {
        pairs.push(("avocet".to_string(), default_dir.to_path_buf()));
    }
    let mut out: Vec<Build> = Vec::new();
    for (label, dir) in pairs {
        if label == "floor" || label.starts_with("sqlx-cli") {
            bail!("--avocet label {label:?} is taken by another tool");
        }
        if out.iter().any(|b| b.label == label) {
            bail!("--avocet label {label:?} given twice");
        }
        let avocetd = dir.join("avocetd");
        let avocet = dir.join("avocet");
        for bin in [&avocetd, &avocet] {
            if !bin.is_file() {
                bail!(
                    "{} is missing: build it first (`cargo build --release --bins`, or run the bench \
                     with --build), or point --avocet LABEL=DIR at a directory holding avocetd and avocet",
                    bin.display()
                );
            }
        }
        let (commit, commit_source) = match git(&dir, &["rev-parse", "HEAD"]) {
            Some(c) => (Some(c), Some(format!("git -C {}", dir.display()))),
            None if dir == default_dir => (
                tree_commit(repo),
                Some("the bench's work tree (assumed: binaries built from it)".into()),
            ),
            None => (None, None),
        };
        let help = std::process::Command::new(&avocet)
            .args(["status", "--help"])
            .output()
            .with_context(|| format!("running {} status --help", avocet.display()))?;
        let status_refresh = String::from_utf8_lossy(&help.stdout).contains("--refresh");
        let census = std::process::Command::new(&avocet)
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("census"));
        let sets = std::process::Command::new(&avocet)
            .args(["sets", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        out.push(Build {
            label,
            dir,
            avocetd,
            avocet,
            commit,
            commit_source,
            status_refresh,
            census,
            sets,
        });
    }
    Ok(out)
}

/// Runs `cargo build --release -p avocet-daemon -p avocet-client` into `target_dir`.
pub(crate) fn build_default(repo: &Path, target_dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building avocetd and avocet (release) into {}",
        target_dir.display()
    );
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "avocet-daemon",
            "-p",
            "avocet-client",
        ])
        .current_dir(repo)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()?;
    if !status.success() {
        bail!("cargo build of avocetd/avocet failed ({status})");
    }
    Ok(())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// sqlx-cli: `--sqlx`, else `sqlx` on PATH, else `<tools>/bin/sqlx`, else installed there
/// with cargo (never with `--smoke`: `None` then).
pub(crate) fn sqlx_cli(
    explicit: Option<&Path>,
    tools: &Path,
    smoke: bool,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--sqlx {}: no such file", p.display());
        }
        return Ok(Some(p.to_path_buf()));
    }
    if let Some(p) = on_path("sqlx") {
        return Ok(Some(p));
    }
    let cached = tools.join("bin").join("sqlx");
    if cached.is_file() {
        return Ok(Some(cached));
    }
    if smoke {
        println!(
            "note: sqlx-cli is not installed (not on PATH, not in {}); smoke skips its rows",
            tools.display()
        );
        return Ok(None);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("installing sqlx-cli 0.8 into {} (once)", tools.display());
    let status = std::process::Command::new(cargo)
        .args([
            "install",
            "sqlx-cli",
            "--version",
            "^0.8",
            "--no-default-features",
        ])
        .args([
            "--features",
            "postgres,mysql,sqlite,rustls",
            "--locked",
            "--root",
        ])
        .arg(tools)
        // cargo install then builds in a temporary directory it removes afterwards.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .status()?;
    if !status.success() || !cached.is_file() {
        bail!("cargo install sqlx-cli failed ({status})");
    }
    Ok(Some(cached))
}

/// `psql -X -w … -f script "<dsn>"`, in one transaction with `single_tx` (`-w`: never
/// prompt for a password, which would stop a child outside the terminal's process group).
pub(crate) fn psql_job(script: &Path, dsn: &str, single_tx: bool) -> Job {
    let mut args: Vec<String> = ["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1"]
        .map(String::from)
        .to_vec();
    if single_tx {
        args.push("-1".into());
    }
    args.extend(["-f".into(), script.display().to_string(), dsn.to_string()]);
    Job {
        program: "psql".into(),
        args,
        stdin: None,
    }
}

/// `sqlx migrate <verb> --source <dir> --database-url <dsn>`.
pub(crate) fn sqlx_job(sqlx: &Path, verb: &str, dir: &Path, dsn: &str) -> Job {
    Job {
        program: sqlx.to_path_buf(),
        args: vec![
            "migrate".into(),
            verb.into(),
            "--source".into(),
            dir.display().to_string(),
            "--database-url".into(),
            dsn.into(),
        ],
        stdin: None,
    }
}

/// First line of `<program> --version`, if it runs.
pub(crate) fn version_of(program: &Path) -> Option<String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|s| s.trim().to_string())
}
