//! `avocetd` in-process on an ephemeral port.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use avocet_client::Client;
use avocet_daemon::{Config, ServerError, config::FleetConfig, fleet::Registry};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::Fleet;

/// A running daemon serving one fleet named `test`, and a client connected to it.
pub struct TestDaemon {
    /// Connected to the daemon.
    pub client: Client,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestDaemon {
    /// Starts a daemon for `fleet` with the given migration directory and lock timeout.
    pub async fn start(
        fleet: &Fleet,
        migrations: &std::path::Path,
        lock_timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_with(Self::config(fleet, migrations, lock_timeout)?).await
    }

    /// The configuration [`TestDaemon::start`] uses: one fleet `test`, concurrency 8.
    pub fn config(
        fleet: &Fleet,
        migrations: &std::path::Path,
        lock_timeout: Duration,
    ) -> anyhow::Result<Config> {
        let fleet_config = FleetConfig {
            dialect: fleet.dialect,
            migrations: migrations.to_owned(),
            concurrency: 8,
            lock_timeout,
            connect_timeout: Duration::from_secs(10),
            history_table: None,
            session_init: Vec::new(),
            tenants: fleet.tenants.clone(),
        };
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            instance_id: "avocetd-test".into(),
            fleets: BTreeMap::from([("test".to_owned(), fleet_config)]),
            ..Config::default()
        };
        Ok(config)
    }

    /// Starts a daemon with a full configuration (its `listen` is ignored).
    pub async fn start_with(config: Config) -> anyhow::Result<Self> {
        let registry = Registry::from_config(&config)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(avocet_daemon::serve(listener, registry, async {
            let _ = stopped.await;
        }));
        let addr = format!("http://{addr}");
        let client = Client::connect(addr.clone())
            .await
            .context("connecting to the test daemon")?;
        Ok(Self {
            client,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// A fresh client handle.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Stops the daemon and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}
