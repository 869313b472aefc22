//! Wiring: the gRPC services with health and reflection, the admin HTTP listener, the
//! idle-session reaper, and an orderly shutdown.
//!
//! | file | what |
//! | --- | --- |
//! | `accept.rs` | both listeners' connections, closed when silent past `first_byte_timeout` |

mod accept;

use std::{sync::Arc, time::Duration};

use avocet_proto::v1::{
    backups_server::BackupsServer, fleet_server::FleetServer, migrator_server::MigratorServer,
    rollouts_server::RolloutsServer, sets_server::SetsServer,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;

use crate::{
    admin::{self, Admin},
    api::{
        self, BackupsService, FleetService, Gated, MigratorService, RolloutsService, SetsService,
    },
    auth::{Gate, TlsError, server_tls},
    config::{Config, ConfigError},
    engine::{Engine, ReplicaOptions},
    fleet::{FleetError, Registry},
    store::StoreError,
    telemetry::{CallDurationLayer, MetricsExport, TelemetryError, server_span},
};

/// How often the health gauges are observed for OTLP push when nothing scrapes them.
const OBSERVE_FOR_PUSH: Duration = Duration::from_secs(15);

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
    /// The configuration does not allow serving this listener, or `[auth]` is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `[tls]` names a file that cannot be read, or TLS cannot be set up with it.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The metrics pipeline could not be built.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// A fleet whose backup policy takes backups lacks its database's tools.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
}

/// Serves `avocet.v1` (plus `grpc.health.v1` and reflection) on `listener` with the fleets
/// and control store of `config`, until `shutdown` completes.
///
/// Every `avocet.v1` call passes `[auth]`'s gate; `[tls]` serves TLS (mutual with
/// `client_ca`); `[limits]` bounds message size, streams per connection, running rollouts
/// and the time to answer. A non-loopback listener needs `[auth]` and `[tls]`, or
/// `insecure = true` ([`Config::check_exposure`]).
///
/// At start, rollouts a stopped daemon left running are marked interrupted. At shutdown,
/// no new rollout or tenant starts, every event stream ends with `ABORTED` ("the daemon is
/// shutting down", never as if its rollout had ended), and tenants in flight finish their
/// migration within `config.shutdown_grace` whether or not any client is attached; their
/// rollouts are left interrupted (resumable). Then it returns.
///
/// No admin HTTP listener: [`serve_with_admin`] serves one.
///
/// # Errors
/// [`ServerError`] when the configuration's fleets, auth, TLS files or control store are
/// unusable, the listener is exposed without protection, or the transport fails.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_with_admin(listener, None, config, shutdown).await
}

/// As [`serve`], and with `admin` the admin HTTP listener: `/metrics` (Prometheus text),
/// `/livez` (200 while the process serves) and `/readyz` (200 once the configuration and
/// sets are loaded and the control store answers; 503 with the reason before that and
/// from the start of shutdown). The caller binds it (`config.admin_listen` is not read
/// here, as `config.listen` is not), so a test can bind `127.0.0.1:0`. It serves until the
/// gRPC server has drained.
///
/// # Errors
/// As [`serve`], and [`ServerError::Telemetry`] when the metrics pipeline cannot be built.
pub async fn serve_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        config.check_exposure(addr)?;
    }
    let gate = Gate::new(&config.auth)
        .map_err(|(key, message)| ConfigError::Invalid {
            key: format!("auth.{key}"),
            message,
        })?
        .with_failure_delay(config.limits.max_auth_failure_delay);
    let tls = config.tls.as_ref().map(server_tls).transpose()?;
    let limits = config.limits.clone();
    crate::catalog::set_max_migration_bytes(limits.max_migration_bytes);
    let registry = Registry::from_config(&config)?;
    crate::backup::check_fleets(
        registry
            .fleets()
            .map(|f| (f.name.as_str(), f.dialect, &f.backup)),
    )?;
    let (control_store, grace) = (config.control_store.clone(), config.shutdown_grace);
    let (retention, set_retention) = (config.rollout_retention, config.set_retention);
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
    let export = Arc::new(MetricsExport::new("avocetd")?);
    let meter = export.meter();
    gate.count_failures(crate::telemetry::auth_failures(&meter));
    let (opened, engine_rx) = watch::channel(None);
    let admin_stop = CancellationToken::new();
    let admin = admin.map(|listener| {
        let state = Admin {
            engine: engine_rx,
            export: export.clone(),
            stopping: token.clone(),
        };
        let stop = admin_stop.clone();
        match listener.local_addr() {
            Ok(addr) => tracing::info!(%addr, "admin listener serving"),
            Err(_) => tracing::info!("admin listener serving"),
        }
        let listener = accept::FirstByte::new(listener, limits.first_byte_timeout);
        tokio::spawn(async move {
            if let Err(e) = admin::serve(listener, state, stop).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        })
    });
    let opening = Engine::open(registry, &control_store, replica, token.clone(), &meter).await;
    let engine = match opening {
        Ok(engine) => Arc::new(
            engine
                .limit_running_rollouts(limits.max_running_rollouts)
                .limit_per_fleet(
                    limits.max_running_rollouts_per_fleet,
                    limits.max_pause_between_waves,
                )
                .limit_per_identity(limits.max_running_rollouts_per_identity)
                .limit_sets(crate::engine::SetLimits {
                    max_bytes: limits.max_set_bytes,
                    max_files: limits.max_set_files,
                    retention: set_retention,
                }),
        ),
        Err(e) => {
            admin_stop.cancel();
            export.shutdown();
            return Err(e.into());
        }
    };
    opened.send_replace(Some(engine.clone()));
    let pusher = export.pushes().then(|| {
        let (engine, export, stop) = (engine.clone(), export.clone(), token.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(observation) = engine.observe().await {
                    export.observe(observation);
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(OBSERVE_FOR_PUSH) => {}
                }
            }
        })
    });
    let (migrator, rollouts, fleet, backups, sets) = api::services(engine.clone());
    let reaper = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.close_idle_sessions(stop).await })
    };
    let retained = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.keep_retention(retention, stop).await })
    };
    let discovery = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.refresh_discovered(stop).await })
    };
    // Replicas share the registry: registrations made through another replica are read
    // from the control store every `REGISTRY_POLL`.
    let registrations = {
        let (engine, stop) = (engine.clone(), token.clone());
        tokio::spawn(async move { engine.refresh_registry(stop).await })
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
    health.set_serving::<BackupsServer<BackupsService>>().await;
    health.set_serving::<SetsServer<SetsService>>().await;
    // Health says what `/readyz` says, and each fleet's own health (`fleet/NAME`) whether
    // its set loads; a shutdown's change is never undone by a late check.
    let health_lock = Arc::new(tokio::sync::Mutex::new(()));
    let honest = tokio::spawn(keep_health(
        engine.clone(),
        health.clone(),
        token.clone(),
        health_lock.clone(),
    ));
    // Reflection in both versions: v1, and v1alpha, which older grpcurl releases, evans,
    // Postman and grpcio-reflection's Python client speak (issue 32, item 1).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(avocet_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection, reflection_v1alpha) =
        (reflection().build_v1()?, reflection().build_v1alpha()?);
    // The only values of the `rpc.method` label: what these descriptors declare.
    crate::telemetry::serve_methods(&[
        avocet_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ]);
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, tls = tls.is_some(), "avocetd serving"),
        Err(_) => tracing::info!(tls = tls.is_some(), "avocetd serving"),
    }
    let stop = token.clone();
    // The grace counts from the signal: the drain gets what the server's own close left.
    let stopping_since = Arc::new(std::sync::OnceLock::new());
    let since = stopping_since.clone();
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .timeout(limits.request_timeout)
        .trace_fn(server_span)
        .layer(CallDurationLayer::new(&meter))
        .layer(tower::util::MapResponseLayer::new(oversized_is_exhausted))
        .layer(gate.slowdown());
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(TlsError::Setup)?;
    }
    let size = limits.max_message_bytes;
    let server = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            MigratorServer::new(migrator).max_decoding_message_size(size),
            Gated(gate.clone()),
        ))
        .add_service(InterceptedService::new(
            RolloutsServer::new(rollouts).max_decoding_message_size(size),
            Gated(gate.clone()),
        ))
        .add_service(InterceptedService::new(
            FleetServer::new(fleet).max_decoding_message_size(size),
            Gated(gate.clone()),
        ))
        .add_service(InterceptedService::new(
            BackupsServer::new(backups).max_decoding_message_size(size),
            Gated(gate.clone()),
        ))
        .add_service(InterceptedService::new(
            SetsServer::new(sets).max_decoding_message_size(size),
            Gated(gate),
        ))
        .serve_with_incoming_shutdown(
            accept::incoming(listener, limits.first_byte_timeout),
            async move {
                shutdown.await;
                let _ = since.set(std::time::Instant::now());
                tracing::info!("shutting down: no new tenant starts; tenants in flight finish");
                let _checks = health_lock.lock().await;
                stop.cancel();
                // As `/readyz`: no longer ready (the rollouts' control is still served).
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                health
                    .set_not_serving::<MigratorServer<MigratorService>>()
                    .await;
            },
        );
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
    let _ = retained.await;
    let _ = discovery.await;
    let _ = registrations.await;
    let _ = honest.await;
    let left = stopping_since
        .get()
        .map_or(grace, |since| grace.saturating_sub(since.elapsed()));
    engine.drain(left).await;
    replica_stop.cancel();
    let _ = replicas.await;
    if let Some(pusher) = pusher {
        let _ = pusher.await;
    }
    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    // The last push carries the fleets' health as the daemon leaves them.
    if export.pushes()
        && let Ok(observation) = engine.observe().await
    {
        export.observe(observation);
    }
    export.shutdown();
    result.map_err(ServerError::from)
}

/// How often gRPC health is brought in line with readiness and the fleets' sets (which also
/// notices, and logs once, a set that broke or was repaired with no request touching it).
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// Until `stop`: every [`HEALTH_EVERY`], makes gRPC health say what `/readyz` says (the
/// overall status `""` and the three services: serving while the control store answers),
/// and each fleet's `fleet/NAME` whether its set loads. A broken fleet does not make the
/// daemon unready (issue 24, item 9). Each change is made under `lock`, which the shutdown
/// takes too, so a check that began before it cannot undo it.
async fn keep_health(
    engine: Arc<Engine>,
    health: tonic_health::server::HealthReporter,
    stop: CancellationToken,
    lock: Arc<tokio::sync::Mutex<()>>,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HEALTH_EVERY) => {}
        }
        let ready = engine.ready().await.is_ok();
        engine.follow_published().await;
        let fleets = engine.fleets();
        let _checks = lock.lock().await;
        if stop.is_cancelled() {
            return;
        }
        let status = |ok: bool| match ok {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        };
        for service in [
            "",
            <MigratorServer<MigratorService> as tonic::server::NamedService>::NAME,
            <RolloutsServer<RolloutsService> as tonic::server::NamedService>::NAME,
            <FleetServer<FleetService> as tonic::server::NamedService>::NAME,
            <BackupsServer<BackupsService> as tonic::server::NamedService>::NAME,
            <SetsServer<SetsService> as tonic::server::NamedService>::NAME,
        ] {
            health.set_service_status(service, status(ready)).await;
        }
        for fleet in fleets {
            health
                .set_service_status(
                    format!("fleet/{}", fleet.name),
                    status(fleet.error.is_none()),
                )
                .await;
        }
    }
}

/// tonic answers a request above `max_message_bytes` with `OUT_OF_RANGE`; gRPC's own
/// implementations (grpc-go, gRPC core) answer `RESOURCE_EXHAUSTED`, which is what a
/// client classifies as a limit. The daemon itself never answers `OUT_OF_RANGE`, so every
/// such answer (headers-only, as a refused request's is) is that refusal.
fn oversized_is_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    if headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        let exhausted = (tonic::Code::ResourceExhausted as i32).to_string();
        if let Ok(value) = http::HeaderValue::from_str(&exhausted) {
            headers.insert("grpc-status", value);
        }
    }
    response
}
