//! `avocetd`: loads the configuration, starts telemetry and serves until SIGINT or SIGTERM.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use avocet_daemon::{Config, config, init_telemetry_as};
use clap::Parser;

/// The Avocet migration daemon.
#[derive(Parser)]
#[command(name = "avocetd", version, about)]
struct Args {
    /// Configuration file (TOML); `AVOCET_*` environment variables override it. Default:
    /// `config/avocet.toml` if it exists, else the built-in default (fleet `demo`, three
    /// SQLite tenants under `./data`, the sample set written to
    /// `./data/sample-migrations/sqlite`).
    #[arg(long, env = "AVOCET_CONFIG")]
    config: Option<PathBuf>,
}

/// jemalloc returns freed pages to the system (its background thread purges them), so the memory that parsing a large
/// configuration needed at start does not stay resident for the daemon's life (glibc's
/// allocator keeps it: 100,000 tenants held 230 MiB idle instead of the registry's size).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs the daemon; an error is one line on stderr (its causes after colons, no
/// backtrace) and exit status 1.
#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("avocetd: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `error` and its causes in one line, `: ` between them, leaving out a cause whose text the
/// line already holds (an error that quotes its source is followed by that source again).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    // The configuration says how to log: until it is read, its warnings go to plain stderr.
    let early = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish();
    let (config, file) = tracing::subscriber::with_default(early, || load(args))?;
    let _telemetry = init_telemetry_as("avocetd", config.log_format)?;
    if let Some(file) = &file {
        // Relative paths in it (migrations, SQLite files) resolve against the working
        // directory, which the line names too.
        let cwd = std::env::current_dir().unwrap_or_default();
        tracing::info!(file = %file.display(), cwd = %cwd.display(), "configuration read");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin = match config.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on admin_listen {addr}"))?,
        ),
        None => None,
    };
    avocet_daemon::serve_with_admin(listener, admin, config, shutdown_signal()).await?;
    tracing::info!("avocetd stopped");
    Ok(())
}

/// The configuration: `--config`, else `config/avocet.toml` if it exists, else the built-in
/// default; with the file it was read from (none for the built-in default).
fn load(args: Args) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let default = std::path::Path::new(config::DEFAULT_PATH);
    let config = match args.config {
        Some(path) => (Config::load(Some(&path))?, Some(path)),
        None if default.is_file() => (Config::load(Some(default))?, Some(default.to_owned())),
        None => {
            let config = Config::builtin()?;
            tracing::info!(
                "no configuration file ({}): serving the built-in default, fleet demo with \
                 three SQLite tenants under ./data and the sample set in ./{}",
                config::DEFAULT_PATH,
                config::SAMPLE_DIR
            );
            (config, None)
        }
    };
    Ok(config)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::error!("cannot handle SIGTERM ({e}); stop avocetd with SIGINT");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
