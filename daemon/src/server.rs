//! Wiring: the gRPC services with health and reflection, the idle-session reaper, and an
//! orderly shutdown.

use std::{sync::Arc, time::Duration};

use avocet_proto::v1::{
    fleet_server::FleetServer, migrator_server::MigratorServer, rollouts_server::RolloutsServer,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::{
    api::{self, FleetService, MigratorService, RolloutsService},
    config::Config,
    engine::{Engine, ReplicaOptions},
    fleet::{FleetError, Registry},
    store::StoreError,
};

/// Why the server did not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A fleet, tenant or migration set of the configuration is unusable.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The control store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reflection service could not read the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `avocet.v1` (plus `grpc.health.v1` and reflection) on `listener` with the fleets
/// and control store of `config`, until `shutdown` completes.
///
/// At start, rollouts a stopped daemon left running are marked interrupted. At shutdown,
/// no new rollout or tenant starts, every stream ends, and tenants in flight finish their
/// migration within `config.shutdown_grace` whether or not any client is attached; their
/// rollouts are left interrupted (resumable). Then it returns.
///
/// # Errors
/// [`ServerError`] when the configuration's fleets or the control store are unusable, or
/// the transport fails.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let registry = Registry::from_config(&config)?;
    let (control_store, grace) = (config.control_store.clone(), config.shutdown_grace);
    let replica = ReplicaOptions {
        id: format!(
            "{}/{}",
            config.instance_id,
            listener.local_addr().map_or(config.listen, |a| a)
        ),
        lease_timeout: config.lease_timeout,
    };
    // The tenants' configuration is not kept beside the registry built from it.
    drop(config);
    let token = CancellationToken::new();
    let engine = Arc::new(Engine::open(registry, &control_store, replica, token.clone()).await?);
    let (migrator, rollouts, fleet) = api::services(engine.clone());
    let reaper = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.close_idle_sessions(stop).await })
    };
    let discovery = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.refresh_discovered(stop).await })
    };
    // The heartbeat outlives the drain: tenants in flight keep their leases.
    let replica_stop = CancellationToken::new();
    let replicas = {
        let (engine, stop) = (engine.clone(), replica_stop.clone());
        tokio::spawn(async move { engine.serve_replica(stop).await })
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MigratorServer<MigratorService>>()
        .await;
    health
        .set_serving::<RolloutsServer<RolloutsService>>()
        .await;
    health.set_serving::<FleetServer<FleetService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(avocet_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "avocetd serving");
    let stop = token.clone();
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(MigratorServer::new(migrator))
        .add_service(RolloutsServer::new(rollouts))
        .add_service(FleetServer::new(fleet))
        .serve_with_incoming_shutdown(incoming(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: no new tenant starts; tenants in flight finish");
            health
                .set_not_serving::<MigratorServer<MigratorService>>()
                .await;
            stop.cancel();
        });
    // Streams end on the token; a client that holds a connection open anyway must not keep
    // the daemon past the grace period.
    let deadline = async {
        token.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("connections still open {grace:?} after shutdown; closing");
            Ok(())
        }
    };
    token.cancel();
    let _ = reaper.await;
    let _ = discovery.await;
    engine.drain(grace).await;
    replica_stop.cancel();
    let _ = replicas.await;
    result.map_err(ServerError::from)
}

/// Accepted connections with `TCP_NODELAY` (a small gRPC response otherwise waits on
/// Nagle's algorithm for the client's delayed ACK, about 40 ms on Linux) and TCP keepalive.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
}
