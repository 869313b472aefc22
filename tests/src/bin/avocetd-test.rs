//! `avocetd` as the restart tests run it: the daemon's own `serve` on the configuration
//! file given as the only argument, stopped by SIGTERM (and killed by SIGKILL). The tests
//! crate cannot name the daemon crate's binary, so this is the same few lines as its
//! `main.rs`.

use anyhow::Context;
use avocet_daemon::{Config, init_telemetry_as, serve};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: avocetd-test CONFIG")?;
    let config = Config::load(Some(path.as_ref()))?;
    let _telemetry = init_telemetry_as("avocetd-test", config.log_format)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    serve(listener, config, async move {
        term.recv().await;
    })
    .await?;
    Ok(())
}
