//! `avocetd` in-process on an ephemeral port, and shorthands for requests on its fleet.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use avocet_client::{Client, ClientError, RolloutRecord};
use avocet_daemon::{Config, FleetConfig, ServerError};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{Fleet, pb, sample_dir};

/// The name of the one fleet a [`TestDaemon`] serves.
pub const FLEET: &str = "test";

/// An apply of the whole fleet [`FLEET`] to the latest version; change fields with
/// `pb::ApplyRequest { dry_run: true, ..request() }`.
pub fn request() -> pb::ApplyRequest {
    pb::ApplyRequest {
        fleet: FLEET.into(),
        ..Default::default()
    }
}

/// A selector for exactly the tenants `ids`.
pub fn only(ids: &[&str]) -> Option<pb::TenantSelector> {
    Some(pb::TenantSelector {
        tenant_ids: ids.iter().map(|&id| id.into()).collect(),
        labels: String::new(),
    })
}

/// A running daemon serving one fleet named [`FLEET`], and a client connected to it.
///
/// The request methods act on the whole fleet [`FLEET`], each on a clone of the client, and
/// read rollout event streams to the end.
pub struct TestDaemon {
    /// Connected to the daemon.
    pub client: Client,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    /// The admin HTTP listener's address, `127.0.0.1:<port>` (`/metrics`, `/livez`,
    /// `/readyz`).
    pub admin: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    /// Holds the daemon's control store, dropped with the daemon.
    _store: Option<tempfile::TempDir>,
}

/// The directory of a SQLite fleet's files: its first tenant's, else its own directory.
fn sqlite_root(fleet: &Fleet) -> Option<std::path::PathBuf> {
    let first = fleet.tenants.first().and_then(|t| {
        let path = t.dsn.strip_prefix("sqlite://")?.split('?').next()?;
        std::path::Path::new(path)
            .parent()
            .map(std::path::Path::to_owned)
    });
    first.or_else(|| fleet.sqlite_dir().map(std::path::Path::to_owned))
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

    /// Starts a daemon for `fleet` on the sample set of its dialect ([`sample_dir`]).
    pub async fn sample(fleet: &Fleet, lock_timeout: Duration) -> anyhow::Result<Self> {
        Self::start(fleet, &sample_dir(fleet.dialect), lock_timeout).await
    }

    /// The configuration [`TestDaemon::start`] uses: one fleet `test`, concurrency 8, a
    /// control store of its own (set by [`TestDaemon::start_with`] when left at the
    /// default).
    pub fn config(
        fleet: &Fleet,
        migrations: &std::path::Path,
        lock_timeout: Duration,
    ) -> anyhow::Result<Config> {
        let fleet_config = FleetConfig {
            concurrency: 8,
            lock_timeout,
            connect_timeout: Duration::from_secs(10),
            tenants: fleet.tenants.clone(),
            sqlite_root: sqlite_root(fleet),
            ..FleetConfig::new(fleet.dialect, migrations.to_owned())
        };
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            instance_id: "avocetd-test".into(),
            fleets: BTreeMap::from([(FLEET.to_owned(), fleet_config)]),
            ..Config::default()
        };
        Ok(config)
    }

    /// Starts a daemon with a full configuration (its `listen` and `admin_listen` are
    /// ignored: both listen on `127.0.0.1:0`; a default `control_store` becomes a SQLite
    /// file of this daemon's own).
    pub async fn start_with(mut config: Config) -> anyhow::Result<Self> {
        // `AVOCET_TEST_LOG=debug` shows the daemon's logs (RUST_LOG syntax), for debugging.
        static LOGS: std::sync::Once = std::sync::Once::new();
        if let Ok(filter) = std::env::var("AVOCET_TEST_LOG") {
            LOGS.call_once(|| {
                if let Ok(guard) = avocet_daemon::init_telemetry_with("avocet-test", &filter) {
                    std::mem::forget(guard);
                }
            });
        }
        let mut store_dir = None;
        if config.control_store == avocet_daemon::config::DEFAULT_CONTROL_STORE {
            let dir = tempfile::tempdir()?;
            config.control_store = format!("sqlite://{}/control.db?mode=rwc", dir.path().display());
            store_dir = Some(dir);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let admin = admin_listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(avocet_daemon::serve_with_admin(
            listener,
            Some(admin_listener),
            config,
            async {
                let _ = stopped.await;
            },
        ));
        // Ready once the engine is open: configuration and sets loaded, control store up.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if task.is_finished() {
                task.await??;
                anyhow::bail!("the test daemon stopped before it was ready");
            }
            if matches!(crate::get(admin, "/readyz").await, Ok((200, _))) {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the test daemon was not ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let addr = format!("http://{addr}");
        let client = Client::connect(addr.clone())
            .await
            .context("connecting to the test daemon")?;
        Ok(Self {
            client,
            addr,
            admin,
            stop: Some(stop),
            task: Some(task),
            _store: store_dir,
        })
    }

    /// A fresh client handle.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Applies `req` and reads the whole event stream.
    pub async fn apply(&self, req: pb::ApplyRequest) -> Result<RolloutRecord, ClientError> {
        RolloutRecord::collect(self.client().apply(req).await?).await
    }

    /// Applies [`request`]: every tenant to the latest version.
    pub async fn apply_all(&self) -> Result<RolloutRecord, ClientError> {
        self.apply(request()).await
    }

    /// Rolls every tenant back to `target` and reads the whole event stream. The down
    /// scripts of the tests' sets drop what their ups made, so the rollback accepts that data
    /// loss (`accept_data_loss`), as a caller who means it does (docs/safety.md).
    pub async fn rollback(
        &self,
        target: pb::rollback_request::Target,
    ) -> Result<RolloutRecord, ClientError> {
        self.rollback_with(pb::RollbackRequest {
            fleet: FLEET.into(),
            target: Some(target),
            accept_data_loss: true,
            ..Default::default()
        })
        .await
    }

    /// Rolls back as `req` says and reads the whole event stream.
    pub async fn rollback_with(
        &self,
        req: pb::RollbackRequest,
    ) -> Result<RolloutRecord, ClientError> {
        RolloutRecord::collect(self.client().rollback(req).await?).await
    }

    /// `Verify` of every tenant.
    pub async fn verify(&self) -> Result<pb::VerifyResponse, ClientError> {
        let req = pb::VerifyRequest {
            fleet: FLEET.into(),
            ..Default::default()
        };
        self.client().verify_all(req).await
    }

    /// `Plan` of every tenant to the latest version.
    pub async fn plan(&self) -> Result<pb::PlanResponse, ClientError> {
        let req = pb::PlanRequest {
            fleet: FLEET.into(),
            ..Default::default()
        };
        self.client().plan_all(req).await
    }

    /// `Status` of every tenant, read afresh (`refresh`), with every tenant's line.
    pub async fn status(&self) -> Result<pb::StatusResponse, ClientError> {
        let req = pb::StatusRequest {
            fleet: FLEET.into(),
            refresh: true,
            page_size: 5000,
            ..Default::default()
        };
        self.client().status(req).await
    }

    /// `Status` of every tenant from the last-known state, with every tenant's line.
    pub async fn known_status(&self) -> Result<pb::StatusResponse, ClientError> {
        let req = pb::StatusRequest {
            fleet: FLEET.into(),
            page_size: 5000,
            ..Default::default()
        };
        self.client().status(req).await
    }

    /// `Repair` marking `version` of `tenant` applied.
    pub async fn mark_applied(
        &self,
        tenant: &str,
        version: i64,
    ) -> Result<pb::RepairResponse, ClientError> {
        let req = pb::RepairRequest {
            fleet: FLEET.into(),
            tenant: tenant.into(),
            version: Some(version.into()),
            action: pb::RepairAction::MarkApplied as i32,
            ..Default::default()
        };
        self.client().repair(req).await
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
