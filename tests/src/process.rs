//! `avocetd` as a real process on a configuration file, for the tests that kill it
//! (SIGKILL, SIGTERM) or run several replicas of it.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};

use crate::Fleet;
use avocet_client::{Client, pb};
use tokio::process::{Child, Command};

/// An `avocetd` process on a configuration file, killed when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
}

impl Daemon {
    /// Starts the daemon binary `bin` (the tests' `CARGO_BIN_EXE_avocetd-test`) on `config`,
    /// which listens on `port`; returns once it answers (within 20 s).
    ///
    /// # Errors
    /// When it cannot be spawned or does not start listening.
    pub async fn start(bin: &str, config: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_with_env(bin, config, port, &[]).await
    }

    /// As [`Daemon::start`], with the environment variables `env` set for the process
    /// (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    ///
    /// # Errors
    /// As [`Daemon::start`].
    pub async fn start_with_env(
        bin: &str,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn(bin, config, port, env, Stdio::inherit()).await
    }

    /// As [`Daemon::start`], its log (warnings and errors) written to the file `log`.
    ///
    /// # Errors
    /// As [`Daemon::start`], or when `log` cannot be created.
    pub async fn start_logging_to(
        bin: &str,
        config: &Path,
        port: u16,
        log: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_logging_with_env(bin, config, port, log, &[]).await
    }

    /// As [`Daemon::start_logging_to`], with the environment variables `env` set for the
    /// process (`RUST_LOG=debug` logs every level).
    ///
    /// # Errors
    /// As [`Daemon::start_logging_to`].
    pub async fn start_logging_with_env(
        bin: &str,
        config: &Path,
        port: u16,
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        let mut all = vec![("NO_COLOR", "1")];
        all.extend_from_slice(env);
        Self::spawn(bin, config, port, &all, file.into()).await
    }

    async fn spawn(
        bin: &str,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> anyhow::Result<Self> {
        let child = Command::new(bin)
            .arg(config)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?;
        let addr = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Client::connect(addr.clone()).await.is_err() {
            ensure!(Instant::now() < deadline, "avocetd did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, addr })
    }

    /// A new client of this daemon.
    ///
    /// # Errors
    /// When it does not answer.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(self.addr.clone()).await?)
    }

    /// Sends `signal` (`KILL`, `TERM`) to the process.
    ///
    /// # Errors
    /// When it already exited or `kill` fails.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("the daemon already exited")?;
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()?;
        ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }
}

/// A free local port (bound, read and released).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts an apply of every tenant of fleet `test` on `client` and leaves at once; returns
/// the rollout's id.
///
/// # Errors
/// When the daemon refuses the apply or sends no first event.
pub async fn start_detached(client: &mut Client) -> anyhow::Result<String> {
    let mut events = client
        .apply(pb::ApplyRequest {
            fleet: "test".into(),
            ..Default::default()
        })
        .await?;
    let first = events.message().await?.context("no first event")?;
    Ok(first.rollout_id)
}

/// Waits until at least `done` tenants of rollout `id` succeeded, for at most 120 s.
///
/// # Errors
/// When the daemon does not answer or the tenants do not finish in time.
pub async fn wait_for(client: &mut Client, id: &str, done: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.rollout(id).await?.succeeded < done {
        ensure!(Instant::now() < deadline, "{done} tenants never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Writes a real daemon's configuration into `dir` and returns its path: it listens on
/// `port`, keeps its control store at `store` (a SQLite file in `dir` when `None`), allows a
/// 30 s shutdown grace, and serves one fleet `test` over `fleet`'s tenants with the set in
/// `set`, `concurrency` tenants at once.
///
/// # Errors
/// When the file cannot be written.
pub fn write_config(
    dir: &Path,
    port: u16,
    fleet: &Fleet,
    set: &Path,
    store: Option<&str>,
    concurrency: usize,
) -> anyhow::Result<std::path::PathBuf> {
    let file = ConfigFile {
        port,
        store,
        concurrency,
        ..ConfigFile::default()
    };
    file.write(dir, fleet, set)
}

/// A real daemon's configuration file, as [`write_config`] writes it, with more of it
/// chosen: the file's name and top-level settings.
#[derive(Debug, Clone, Copy)]
pub struct ConfigFile<'a> {
    /// The file is `{name}.toml` in its directory.
    pub name: &'a str,
    /// `listen = "127.0.0.1:{port}"`.
    pub port: u16,
    /// The control store; a SQLite file in the directory when `None`.
    pub store: Option<&'a str>,
    /// The fleet's `concurrency`.
    pub concurrency: usize,
    /// `shutdown_grace`, e.g. `"30s"`.
    pub shutdown_grace: &'a str,
    /// More top-level lines, e.g. `instance_id = "a"`.
    pub settings: &'a [&'a str],
}

impl Default for ConfigFile<'_> {
    fn default() -> Self {
        Self {
            name: "avocet",
            port: 0,
            store: None,
            concurrency: 8,
            shutdown_grace: "30s",
            settings: &[],
        }
    }
}

impl ConfigFile<'_> {
    /// Writes this file into `dir` for one fleet `test` over `fleet`'s tenants (and their
    /// schemas, if any) with the set in `set`; returns its path.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(
        &self,
        dir: &Path,
        fleet: &Fleet,
        set: &Path,
    ) -> anyhow::Result<std::path::PathBuf> {
        let tenants: Vec<String> = fleet
            .tenants
            .iter()
            .map(|t| match &t.schema {
                Some(schema) => format!(
                    "  {{ id = \"{}\", dsn = \"{}\", schema = \"{schema}\" }},",
                    t.id, t.dsn
                ),
                None => format!("  {{ id = \"{}\", dsn = \"{}\" }},", t.id, t.dsn),
            })
            .collect();
        let store = match self.store {
            Some(s) => s.to_owned(),
            None => format!("sqlite://{}/{}.db?mode=rwc", dir.display(), self.name),
        };
        let text = format!(
            "listen = \"127.0.0.1:{}\"\ncontrol_store = \"{store}\"\nshutdown_grace = \"{}\"\n\
             {}\n[fleets.test]\ndialect = \"{}\"\nmigrations = \"{}\"\nconcurrency = {}\n\
             tenants = [\n{}\n]\n",
            self.port,
            self.shutdown_grace,
            self.settings.join("\n"),
            fleet.dialect,
            set.display(),
            self.concurrency,
            tenants.join("\n")
        );
        let path = dir.join(format!("{}.toml", self.name));
        std::fs::write(&path, text)?;
        Ok(path)
    }
}
