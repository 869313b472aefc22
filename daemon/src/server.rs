//! Wiring: the gRPC server with health and reflection, and an orderly shutdown.

use std::{sync::Arc, time::Duration};

use avocet_proto::v1::{fleet_server::FleetServer, migrator_server::MigratorServer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::{
    api::{self, FleetService, MigratorService},
    engine::Engine,
    fleet::Registry,
};

/// Longest wait, after shutdown begins, for running migrations to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The reflection service could not read the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `avocet.v1` (plus `grpc.health.v1` and reflection) on `listener` until `shutdown`
/// completes. Shutdown refuses new rollouts and lets running tenants finish their current
/// migration; after [`DRAIN_TIMEOUT`] it returns regardless, dropping what still runs
/// (a dropped tenant task closes its connections, which ends its sessions and locks; a
/// non-transactional step cut off there keeps its `running` record).
///
/// # Errors
/// [`ServerError`] when the transport fails.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let token = CancellationToken::new();
    let engine = Arc::new(Engine::new(registry, token.clone()));
    let (migrator, fleet) = api::services(engine.clone());
    let reaper = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.close_idle_sessions(stop).await })
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MigratorServer<MigratorService>>()
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
        .add_service(FleetServer::new(fleet))
        .serve_with_incoming_shutdown(incoming(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: finishing running migrations");
            health
                .set_not_serving::<MigratorServer<MigratorService>>()
                .await;
            stop.cancel();
        });
    // Graceful shutdown waits for every connection to close; a client that stopped reading
    // its stream, or a migration that runs for hours, must not hold the daemon past
    // DRAIN_TIMEOUT after the signal.
    let deadline = async {
        token.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    let result = tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("connections still open {DRAIN_TIMEOUT:?} after shutdown; closing");
            Ok(())
        }
    };
    token.cancel();
    let _ = reaper.await;
    if tokio::time::timeout(Duration::from_secs(1), engine.drain())
        .await
        .is_err()
    {
        tracing::warn!("rollouts still running at exit; their tenants' sessions close with it");
    }
    result.map_err(ServerError::from)
}

/// Accepted connections with `TCP_NODELAY` (a small gRPC response otherwise waits on
/// Nagle's algorithm for the client's delayed ACK, about 40 ms on Linux) and TCP keepalive.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
}
