//! avocet: a fresh `avocetd` child per measurement on a free port, and `avocet` CLI calls
//! against it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

use super::{Build, child, pool::tail};
use crate::stats::{self, Cpu};

/// The fleet a daemon serves (always named `bench`).
pub(crate) struct FleetSpec<'a> {
    /// `postgres`, `mysql` or `sqlite`.
    pub(crate) dialect: &'a str,
    /// Migration set directory (absolute).
    pub(crate) migrations: &'a Path,
    /// The fleet's default concurrency.
    pub(crate) concurrency: usize,
    /// One DSN per tenant; tenant ids are `t1..`.
    pub(crate) dsns: &'a [String],
    /// One schema per tenant (schema-per-tenant), or none.
    pub(crate) schemas: Option<&'a [String]>,
    /// The body of `[fleets.bench.backup]` (TOML lines), or none.
    pub(crate) backup: Option<&'a str>,
    /// The fleet's `census_on_apply`; `None` leaves the key out (builds without it refuse
    /// it).
    pub(crate) census_on_apply: Option<bool>,
}

/// Peak RSS and CPU time of a daemon.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct DaemonFigures {
    /// VmHWM, in KiB.
    pub(crate) peak_rss_kib: u64,
    /// utime + stime since start, in ms.
    pub(crate) cpu_ms: f64,
}

/// A running `avocetd`; killed when dropped.
pub(crate) struct Daemon {
    child: tokio::process::Child,
    pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub(crate) addr: String,
    log: PathBuf,
}

/// One CLI call.
pub(crate) struct CliRun {
    /// Wall time of the process.
    pub(crate) wall: Duration,
    /// Exit code (`None`: killed by a signal).
    pub(crate) code: Option<i32>,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
    /// CPU time of the CLI process, in ms.
    pub(crate) cpu_ms: f64,
}

fn quote(s: &str) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(s).expect("string")
}

/// The daemon's configuration. A build with a control store (those whose `status` has
/// `--refresh`) gets one of its own beside the configuration, named after its label, so two
/// builds never share one (an older daemon refuses a store a newer one has migrated);
/// `control_store` is its URL.
fn config_toml(port: u16, spec: &FleetSpec<'_>, control_store: Option<&str>) -> String {
    let store = control_store.map_or_else(String::new, |url| {
        format!("control_store = {}\n", quote(url))
    });
    let mut t = format!(
        "listen = \"127.0.0.1:{port}\"\n{store}max_connections = {}\n\n[fleets.bench]\ndialect = \"{}\"\n\
         migrations = {}\nconcurrency = {}\nlock_timeout = \"30s\"\ntenants = [\n",
        (spec.concurrency * 2 + 4).max(64),
        spec.dialect,
        quote(&spec.migrations.display().to_string()),
        spec.concurrency,
    );
    if let Some(on) = spec.census_on_apply {
        t = t.replacen(
            "tenants = [\n",
            &format!("census_on_apply = {on}\ntenants = [\n"),
            1,
        );
    }
    for (i, dsn) in spec.dsns.iter().enumerate() {
        let schema = spec
            .schemas
            .and_then(|s| s.get(i))
            .map_or_else(String::new, |s| format!(", schema = {}", quote(s)));
        t.push_str(&format!(
            "  {{ id = \"t{}\", dsn = {}{schema} }},\n",
            i + 1,
            quote(dsn)
        ));
    }
    t.push_str("]\n");
    if let Some(backup) = spec.backup {
        t.push_str(&format!("\n[fleets.bench.backup]\n{backup}"));
    }
    t
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A command with the environment cleared of settings that would change what is measured.
fn command(program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("AVOCET_") || k.starts_with("OTEL_") || k == "RUST_LOG" {
            cmd.env_remove(&*k);
        }
    }
    cmd.kill_on_drop(true);
    cmd
}

impl Daemon {
    /// Writes the configuration under `work` (as `<tag>.toml`, log `<tag>.log`), starts the
    /// daemon and waits until its port accepts connections.
    pub(crate) async fn start(
        build: &Build,
        spec: &FleetSpec<'_>,
        work: &Path,
        tag: &str,
    ) -> anyhow::Result<Daemon> {
        let store = work.join(format!("control-{}.db", build.label));
        let store = format!("sqlite://{}?mode=rwc", store.display());
        let store = build.status_refresh.then_some(store.as_str());
        Self::start_on(build, spec, work, tag, store).await
    }

    /// [`Daemon::start`] on the control store `store` (a URL: `sqlite://…`,
    /// `postgres://…`), or the build's default store when `None`.
    pub(crate) async fn start_on(
        build: &Build,
        spec: &FleetSpec<'_>,
        work: &Path,
        tag: &str,
        store: Option<&str>,
    ) -> anyhow::Result<Daemon> {
        let port = free_port()?;
        let config = work.join(format!("{tag}.toml"));
        std::fs::write(&config, config_toml(port, spec, store))?;
        let log = work.join(format!("{tag}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut child = command(&build.avocetd)
            .arg("--config")
            .arg(&config)
            .current_dir(work)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            // No admin listener: its default port would be contended, and scrapes are not
            // measured. An older build only warns about the variable.
            .env("AVOCET_ADMIN_LISTEN", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start {}", build.avocetd.display()))?;
        let pid = child.id().context("avocetd has no pid")?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("avocetd exited with {status} at start: {}", log_tail(&log));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(180) {
                bail!(
                    "avocetd did not listen on port {port} within 180 s: {}",
                    log_tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Daemon {
            child,
            pid,
            addr: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    /// Process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Peak RSS and CPU so far.
    pub(crate) fn figures(&self, cpu: &Cpu) -> Option<DaemonFigures> {
        Some(DaemonFigures {
            peak_rss_kib: stats::peak_rss_kib(self.pid).ok()?,
            cpu_ms: cpu.process_ms(self.pid).ok()?,
        })
    }

    /// The end of the daemon's log.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Runs `avocet --addr <addr> <args…>` in a process group of its own; past `timeout` the
    /// group is killed and the error is a [`child::TimedOut`] (the caller then kills the daemon).
    pub(crate) async fn cli(
        &self,
        build: &Build,
        args: &[String],
        cpu: &Cpu,
        timeout: Duration,
    ) -> anyhow::Result<CliRun> {
        let cpu_before = cpu.children_ms();
        let start = Instant::now();
        let mut cmd = command(&build.avocet);
        cmd.arg("--addr")
            .arg(&self.addr)
            .args(args)
            .stdin(Stdio::null());
        let deadline = tokio::time::Instant::now() + timeout;
        let out =
            child::run(cmd, true, deadline, timeout)
                .await
                .map_err(|e| match child::timed_out(&e) {
                    Some(_) => e,
                    None => e.context(format!("cannot run {}", build.avocet.display())),
                })?;
        Ok(CliRun {
            wall: start.elapsed(),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
            cpu_ms: cpu.children_ms() - cpu_before,
        })
    }

    /// SIGKILL, and waits for it: for a daemon whose client timed out.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Stops the daemon: [`Daemon::kill`] after a timeout (`timed_out`), else
    /// [`Daemon::stop`].
    pub(crate) async fn end(self, timed_out: bool) {
        if timed_out {
            self.kill().await;
        } else {
            self.stop().await;
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub(crate) async fn stop(mut self) {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn log_tail(path: &Path) -> String {
    tail(
        &strip_ansi(&std::fs::read_to_string(path).unwrap_or_default()),
        800,
    )
}

/// Removes ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks an `apply --output json` run: exit status 0, a `rollout_finished` event with no
/// failure, and a succeeded `tenant_finished` event for each of the `n` tenants.
pub(crate) fn check_apply(run: &CliRun, n: usize) -> Result<(), String> {
    let mut succeeded = 0;
    let mut first_failure = None;
    let mut finished = None;
    for line in run.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Err(format!("not a JSON line: {}", tail(line, 200)));
        };
        let data = &v["data"];
        match v["event"].as_str() {
            Some("tenant_finished") if data["outcome"] == "succeeded" => succeeded += 1,
            Some("tenant_finished") if first_failure.is_none() => {
                first_failure = Some(format!("tenant {}: {}", data["tenant"], data["error"]));
            }
            Some("rollout_finished") => finished = Some(data.clone()),
            _ => {}
        }
    }
    let detail = || {
        let f = first_failure.clone().unwrap_or_default();
        format!("{f} {}", tail(&run.stderr, 800)).trim().to_string()
    };
    if run.code != Some(0) {
        return Err(format!(
            "avocet exited with {}: {}",
            exit_text(run.code),
            detail()
        ));
    }
    let Some(f) = finished else {
        return Err(format!("no rollout_finished event: {}", detail()));
    };
    if f["failed"] != 0 || succeeded != n {
        return Err(format!(
            "{succeeded} of {n} tenants succeeded ({f}): {}",
            detail()
        ));
    }
    Ok(())
}

/// Checks a `status --output json` document: every tenant up to date.
pub(crate) fn check_status(run: &CliRun, n: usize) -> Result<(), String> {
    let v = parse_doc(run)?;
    if v["tenant_count"] != n || v["up_to_date"] != n {
        return Err(format!(
            "status: {} of {} tenants up to date (expected {n}); unreachable {}",
            v["up_to_date"], v["tenant_count"], v["unreachable"]
        ));
    }
    Ok(())
}

/// Checks a `plan --output json` document: `n` tenants, none blocked, nothing to run.
pub(crate) fn check_plan(run: &CliRun, n: usize) -> Result<(), String> {
    let v = parse_doc(run)?;
    let tenants = v["tenants"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let idle = tenants
        .iter()
        .filter(|t| t["blocked"] == false && t["steps"].as_array().is_some_and(Vec::is_empty))
        .count();
    if tenants.len() != n || idle != n {
        return Err(format!(
            "plan: {idle} of {} tenants with nothing to run (expected {n})",
            tenants.len()
        ));
    }
    Ok(())
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "a signal".into(), |c| format!("status {c}"))
}

fn parse_doc(run: &CliRun) -> Result<Value, String> {
    if run.code != Some(0) {
        return Err(format!(
            "avocet exited with {}: {}",
            exit_text(run.code),
            tail(&run.stderr, 800)
        ));
    }
    serde_json::from_str(run.stdout.trim())
        .map_err(|e| format!("not a JSON document ({e}): {}", tail(&run.stdout, 200)))
}
