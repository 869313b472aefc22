//! The server around the engine: gRPC health and reflection, and shutdown in the middle of
//! a rollout.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, TestDaemon, pb, request, scenarios};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};
use tonic_reflection::pb::v1alpha;

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_answer() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let channel = tonic::transport::Channel::from_shared(daemon.addr.clone())?
        .connect()
        .await?;
    let mut health = health_client::HealthClient::new(channel.clone());
    for service in [
        "avocet.v1.Migrator",
        "avocet.v1.Rollouts",
        "avocet.v1.Fleet",
        "avocet.v1.Backups",
        "avocet.v1.Sets",
    ] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        ensure!(
            resp.status == ServingStatus::Serving as i32,
            "{service}: {resp:?}"
        );
    }
    // Both versions of reflection list every service: v1, and v1alpha, which older grpcurl
    // releases, evans, Postman and grpcio-reflection's Python client speak.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let resp = responses.message().await?.context("a reflection answer")?;
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        anyhow::bail!("unexpected reflection answer {resp:?}");
    };
    let v1: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let resp = responses
        .message()
        .await?
        .context("a v1alpha reflection answer")?;
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        anyhow::bail!("unexpected v1alpha reflection answer {resp:?}");
    };
    let v1alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for names in [v1, v1alpha] {
        for s in [
            "avocet.v1.Migrator",
            "avocet.v1.Rollouts",
            "avocet.v1.Fleet",
            "avocet.v1.Backups",
            "avocet.v1.Sets",
            "grpc.health.v1.Health",
        ] {
            ensure!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
        }
    }
    daemon.stop().await
}

/// Stopping the daemon mid-rollout lets running tenants finish the migration they are in,
/// starts nothing new, and leaves no `running` record or held lock behind.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_mid_rollout_leaves_every_tenant_consistent() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(6).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let mut events = daemon
        .client()
        .apply(pb::ApplyRequest {
            concurrency: 2,
            ..request()
        })
        .await?;
    // Wait until migrations are under way, then stop.
    while let Some(e) = events.message().await? {
        if matches!(e.kind, Some(pb::rollout_event::Kind::MigrationFinished(_))) {
            break;
        }
    }
    tokio::time::timeout(Duration::from_secs(60), daemon.stop())
        .await
        .context("shutdown did not drain within 60 s")??;

    let mut finished = 0;
    for i in 0..fleet.tenants.len() {
        let history = fleet.history(i).await.unwrap_or_default();
        ensure!(
            history.iter().all(|(_, s, _)| s == "applied"),
            "tenant {i}: {history:?}"
        );
        let versions: Vec<i64> = history.iter().map(|(v, _, _)| *v).collect();
        ensure!(
            versions == (1..=versions.len() as i64).collect::<Vec<_>>(),
            "tenant {i}: {versions:?}"
        );
        if versions.len() == 16 {
            finished += 1;
        }
    }
    ensure!(finished < fleet.tenants.len(), "shutdown stopped nothing");

    // Every lock was released: a new daemon finishes the job.
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(2)).await?;
    let run = daemon.apply_all().await?;
    ensure!(run.finished().context("finished")?.failed == 0);
    for i in 0..fleet.tenants.len() {
        scenarios::assert_latest_schema(&fleet, i).await?;
    }
    daemon.stop().await
}
