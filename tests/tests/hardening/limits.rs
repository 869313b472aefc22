//! What one caller may cost (issue 25): rollout slots (finding 9), repeated ids (10),
//! watch sequences (13), silent connections (18), failed authentications (16), the
//! control store's rows (12) and quoted input in errors (17).

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_client::{ClientError, pb};
use avocet_tests::{FLEET, Fleet, TestDaemon, sample_dir};
use tonic::Code;

use super::code;

/// Finding 9: with `max_running_rollouts_per_fleet = 1`, a second rollout of one fleet is
/// RESOURCE_EXHAUSTED while another fleet still starts one; a pause between waves above
/// `max_pause_between_waves` is refused.
#[tokio::test(flavor = "multi_thread")]
async fn one_fleet_cannot_take_every_rollout_slot() -> anyhow::Result<()> {
    let (eu, us) = (Fleet::sqlite(2).await?, Fleet::sqlite(1).await?);
    let mut config = super::two_fleets(("eu", &eu), ("us", &us))?;
    config.limits.max_running_rollouts = 8;
    config.limits.max_running_rollouts_per_fleet = 1;
    config.limits.max_pause_between_waves = Duration::from_secs(600);
    let daemon = TestDaemon::start_with(config).await?;
    let mut c = daemon.client();
    let slow = |pause: u64| pb::ApplyRequest {
        fleet: "eu".into(),
        strategy: Some(pb::Strategy {
            wave_size: "1".into(),
            pause_between_waves_ms: Some(pause),
            ..Default::default()
        }),
        ..Default::default()
    };
    let day = c.apply(slow(86_400_000)).await;
    ensure!(code(&day) == Some(Code::InvalidArgument), "{day:?}");
    let mut events = c.apply(slow(60_000)).await?;
    let id = events.message().await?.context("first event")?.rollout_id;
    let second = c.apply(slow(60_000)).await;
    ensure!(code(&second) == Some(Code::ResourceExhausted), "{second:?}");
    ensure!(format!("{second:?}").contains("per_fleet"), "{second:?}");
    let other = daemon
        .apply(pb::ApplyRequest {
            fleet: "us".into(),
            ..Default::default()
        })
        .await?;
    ensure!(
        other.finished().is_some_and(|f| f.succeeded == 1),
        "{other:?}"
    );
    c.control(&id, avocet_client::Control::Cancel).await?;
    daemon.stop().await
}

/// A slow apply of fleet `fleet`: one tenant per wave, `pause_ms` between waves.
fn slow(fleet: &str, pause_ms: u64) -> pb::ApplyRequest {
    pb::ApplyRequest {
        fleet: fleet.into(),
        strategy: Some(pb::Strategy {
            wave_size: "1".into(),
            pause_between_waves_ms: Some(pause_ms),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Finding 9: while an apply of a fleet runs, one more waits its turn and starts when it
/// ends, and a third is refused at once (RESOURCE_EXHAUSTED); one identity cannot run
/// more than `max_running_rollouts_per_identity` rollouts, whatever their fleets.
#[tokio::test(flavor = "multi_thread")]
async fn one_apply_per_fleet_runs_one_waits_and_identities_are_limited() -> anyhow::Result<()> {
    let (eu, us) = (Fleet::sqlite(2).await?, Fleet::sqlite(1).await?);
    let mut config = super::two_fleets(("eu", &eu), ("us", &us))?;
    config.limits.max_running_rollouts_per_fleet = 8;
    config.limits.max_running_rollouts_per_identity = 2;
    let daemon = TestDaemon::start_with(config).await?;
    let mut c = daemon.client();
    let mut first = c.apply(slow("eu", 60_000)).await?;
    let id = first.message().await?.context("first event")?.rollout_id;
    let (mut c2, mut c3) = (daemon.client(), daemon.client());
    let mut second = tokio::spawn(async move { c2.apply(slow("eu", 0)).await });
    let mut third = tokio::spawn(async move { c3.apply(slow("eu", 0)).await });
    // One of them is refused at once; the other waits for the running apply.
    let (refused, waiting) = tokio::select! {
        r = &mut second => (r?, third),
        r = &mut third => (r?, second),
    };
    ensure!(
        code(&refused) == Some(Code::ResourceExhausted),
        "{refused:?}"
    );
    ensure!(format!("{refused:?}").contains("waits its"), "{refused:?}");
    ensure!(!waiting.is_finished(), "the second apply did not wait");
    // The identity (anonymous: no [auth]) runs one; one more, of another fleet, starts;
    // then it has its 2 and a third is refused, even a dry run.
    let mut us_run = c.apply(slow("us", 60_000)).await?;
    let us_id = us_run.message().await?.context("us event")?.rollout_id;
    let over = c
        .apply(pb::ApplyRequest {
            fleet: "us".into(),
            dry_run: true,
            ..Default::default()
        })
        .await;
    ensure!(
        code(&over) == Some(Code::ResourceExhausted)
            && format!("{over:?}").contains("per_identity"),
        "{over:?}"
    );
    // The first ends: the waiting apply starts, as a rollout of its own.
    c.control(&id, avocet_client::Control::Cancel).await?;
    let mut waited = waiting.await??;
    let next = waited
        .message()
        .await?
        .context("the waiting apply's first event")?;
    ensure!(
        next.rollout_id != id && !next.rollout_id.is_empty(),
        "{next:?}"
    );
    c.control(&us_id, avocet_client::Control::Cancel).await?;
    daemon.stop().await
}

/// Finding 10: more ids than the fleet has tenants (repeats included) are refused.
#[tokio::test(flavor = "multi_thread")]
async fn more_ids_than_tenants_are_refused() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let plan = |ids: Vec<String>| pb::PlanRequest {
        fleet: FLEET.into(),
        selector: Some(pb::TenantSelector {
            tenant_ids: ids,
            labels: String::new(),
        }),
        ..Default::default()
    };
    let mut c = daemon.client();
    let got = c.plan(plan(vec!["t00".into(); 3])).await;
    ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
    let ok = c.plan(plan(vec!["t00".into(), "t01".into()])).await?;
    ensure!(ok.tenants.len() == 2, "{ok:?}");
    let twice = c.plan(plan(vec!["t01".into(), "t01".into()])).await?;
    ensure!(twice.tenants.len() == 1, "{twice:?}");
    daemon.stop().await
}

/// Finding 13: watching a finished rollout from its last event ends at once; a sequence
/// past the end (or above 2^63) is INVALID_ARGUMENT instead of a replay of everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_rollouts_watch_ends_and_past_the_end_is_refused() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    let id = run.id().context("id")?.to_owned();
    let mut c = daemon.client();
    let last = c.rollout(&id).await?.last_seq;
    let mut events = c.watch(&id, last).await?;
    let next = tokio::time::timeout(Duration::from_secs(5), events.message()).await;
    ensure!(
        matches!(next, Ok(Ok(None))),
        "the watch did not end: {next:?}"
    );
    for after in [last + 1, 1 << 63, u64::MAX] {
        let got = match c.watch(&id, after).await {
            Ok(mut events) => events
                .message()
                .await
                .map(|_| ())
                .map_err(ClientError::from),
            Err(e) => Err(e),
        };
        ensure!(
            code(&got) == Some(Code::InvalidArgument),
            "{after}: {got:?}"
        );
    }
    daemon.stop().await
}

/// Finding 18: a connection that never sends a byte, to the gRPC or the admin listener,
/// is closed after `first_byte_timeout`; the daemon keeps serving others.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_closed() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let fleet = Fleet::sqlite(1).await?;
    let mut config =
        TestDaemon::config(&fleet, &sample_dir(fleet.dialect), Duration::from_secs(5))?;
    config.limits.first_byte_timeout = Duration::from_millis(300);
    let daemon = TestDaemon::start_with(config).await?;
    let grpc = daemon.addr.trim_start_matches("http://").to_owned();
    // Both listeners: gRPC's and the admin HTTP one.
    for addr in [grpc, daemon.admin.to_string()] {
        let mut silent = tokio::net::TcpStream::connect(&addr).await?;
        let mut buf = [0_u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
        ensure!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection to {addr} stayed open: {read:?}"
        );
    }
    ensure!(daemon.plan().await.is_ok());
    let (status, _) = avocet_tests::get(daemon.admin, "/livez").await?;
    ensure!(status == 200, "{status}");
    daemon.stop().await
}

/// Finding 16: after 50 wrong tokens from one address in a minute, even the right token is
/// refused (RESOURCE_EXHAUSTED) from that address; `/metrics` counts every refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_guesser_is_locked_out() -> anyhow::Result<()> {
    use avocet_client::{Client, Credentials, Timeouts};
    let fleet = Fleet::sqlite(1).await?;
    let daemon = TestDaemon::start_with(super::viewer_only(&fleet)?).await?;
    let as_token = |token: &str| Credentials {
        token: Some(token.into()),
        ..Default::default()
    };
    let mut right =
        Client::connect_as(&daemon.addr, Timeouts::default(), &as_token("viewer-token")).await?;
    ensure!(right.list_fleets().await.is_ok());
    let mut wrong =
        Client::connect_as(&daemon.addr, Timeouts::default(), &as_token("guess")).await?;
    for _ in 0..50 {
        let got = wrong.list_fleets().await;
        ensure!(code(&got) == Some(Code::Unauthenticated), "{got:?}");
    }
    let got = right.list_fleets().await;
    ensure!(code(&got) == Some(Code::ResourceExhausted), "{got:?}");
    // Each refusal is counted, by a reason from a closed set.
    let (_, text) = avocet_tests::get(daemon.admin, "/metrics").await?;
    let counted = |reason: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("avocet_auth_failures_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    ensure!(counted("token") == Some(50.0), "{text}");
    ensure!(counted("locked_out") == Some(1.0), "{text}");
    daemon.stop().await
}

/// Finding 12: a dry run whose selector is half a megabyte (60,000 label values) stores a
/// bounded summary in its rollout row and its audit entry, not the request.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_runs_huge_selector_is_stored_as_a_bounded_summary() -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let fleet = Fleet::sqlite(2).await?;
    let store = tempfile::tempdir()?;
    let url = format!("sqlite://{}/control.db?mode=rwc", store.path().display());
    let mut config =
        TestDaemon::config(&fleet, &sample_dir(fleet.dialect), Duration::from_secs(5))?;
    config.control_store = url.clone();
    let daemon = TestDaemon::start_with(config).await?;
    let values: Vec<String> = (0..60_000).map(|i| format!("v{i:06}")).collect();
    let labels = format!("region notin ({})", values.join(","));
    ensure!(labels.len() > 400_000);
    let run = daemon
        .apply(pb::ApplyRequest {
            fleet: FLEET.into(),
            dry_run: true,
            selector: Some(pb::TenantSelector {
                tenant_ids: fleet.ids(),
                labels,
            }),
            ..Default::default()
        })
        .await?;
    ensure!(run.finished().is_some_and(|f| f.succeeded == 2), "{run:?}");
    daemon.stop().await?;
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&url).await?;
    let sizes: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT length(r.request), length(r.spec), length(a.detail) \
         FROM rollouts r JOIN audit a ON a.rollout_id = r.id",
    )
    .fetch_all(&mut db)
    .await?;
    ensure!(sizes.len() == 1, "{sizes:?}");
    for (request, spec, detail) in sizes {
        ensure!(
            request < 4096 && spec < 4096 && detail < 4096,
            "stored {request}, {spec} and {detail} bytes"
        );
    }
    Ok(())
}

/// Finding 17: an error quotes at most 128 bytes of any one input, whichever field it
/// came in (a label selector, a tenant id, a page token, a rollout id).
#[tokio::test(flavor = "multi_thread")]
async fn errors_quote_at_most_128_bytes_of_an_input() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    let long = "x".repeat(20_000);
    let longest_run = |message: &str| {
        message
            .split(|ch| ch != 'x')
            .map(str::len)
            .max()
            .unwrap_or(0)
    };
    let plan = |ids: Vec<String>, labels: String| pb::PlanRequest {
        fleet: FLEET.into(),
        selector: Some(pb::TenantSelector {
            tenant_ids: ids,
            labels,
        }),
        ..Default::default()
    };
    let mut messages = Vec::new();
    for req in [
        plan(Vec::new(), format!("region={long}")),
        plan(Vec::new(), format!("region in ({long}")),
        plan(vec![long.clone()], String::new()),
    ] {
        let got = c.plan(req).await;
        ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
        messages.push(got.err().map(|e| e.to_string()).unwrap_or_default());
    }
    let got = c
        .list_rollouts(pb::ListRolloutsRequest {
            page_token: long.clone(),
            ..Default::default()
        })
        .await;
    ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
    messages.push(got.err().map(|e| e.to_string()).unwrap_or_default());
    let got = c.rollout(&long).await;
    ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
    messages.push(got.err().map(|e| e.to_string()).unwrap_or_default());
    for message in messages {
        ensure!(
            (1..=128).contains(&longest_run(&message)),
            "{} bytes of input quoted: {}",
            longest_run(&message),
            &message[..message.len().min(300)]
        );
    }
    daemon.stop().await
}
