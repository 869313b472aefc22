//! Clients: one that goes away mid-stream, and 32 reading at once during a rollout.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Client, Events, RolloutRecord};
use avocet_daemon::DialectKind;
use avocet_tests::{FLEET, Fleet, TestDaemon, invariants, pb, request};

use crate::{events_whole, gap_free, report};

/// Reads `events` into `seen` until `tenants` more tenants have finished (or the stream
/// ends).
async fn read_tenants(
    events: &mut Events,
    seen: &mut Vec<pb::RolloutEvent>,
    tenants: usize,
) -> anyhow::Result<()> {
    let mut finished = 0;
    while finished < tenants {
        let Some(event) = events.message().await? else {
            break;
        };
        if matches!(event.kind, Some(pb::rollout_event::Kind::TenantFinished(_))) {
            finished += 1;
        }
        seen.push(event);
    }
    Ok(())
}

/// 7. A client on a connection of its own starts an apply of 8 tenants (2 at a time, a
///    0.3 s migration each) and goes away (stream and connection dropped) after 2 tenants
///    finished; the rollout goes on without it; a second client watches from the last
///    sequence number seen and goes away too; a third watches from there to the end.
///    Together they saw every event the control store holds, in order, exactly once; the
///    rollout succeeded; the store agrees with the tenants.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_disconnecting_mid_stream_misses_nothing_on_watch() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(8).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Postgres, 3, Some(0.3))?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    config.fleets.get_mut(FLEET).context("fleet")?.concurrency = 2;
    let daemon = TestDaemon::start_with(config).await?;
    let mut seen = Vec::new();
    let mut gone = Client::connect(daemon.addr.clone()).await?;
    let mut events = gone.apply(request()).await?;
    read_tenants(&mut events, &mut seen, 2).await?;
    drop((events, gone));
    let id = seen.first().context("no event")?.rollout_id.clone();
    let mut client = daemon.client();
    // It goes on with no client: more tenants finish.
    avocet_tests::wait_for(&mut client, &id, 4).await?;

    let mut gone = Client::connect(daemon.addr.clone()).await?;
    let mut events = gone.watch(&id, seen.last().context("seen")?.seq).await?;
    read_tenants(&mut events, &mut seen, 2).await?;
    drop((events, gone));
    let after = seen.last().context("seen")?.seq;
    let rest = RolloutRecord::collect(client.watch(&id, after).await?).await?;
    seen.extend(rest.events);
    let seen = RolloutRecord { events: seen };
    ensure!(gap_free(&seen)? == 0, "a tenant finished twice");
    let finished = seen.finished().context("no RolloutFinished seen")?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32 && finished.succeeded == 8,
        "{finished:?}"
    );
    let stored = events_whole(&mut client, &id).await?;
    ensure!(
        seen.events == stored.events,
        "the clients saw {} events, the store has {}",
        seen.events.len(),
        stored.events.len()
    );
    invariants::agrees(&fleet, &stored).await?;
    // The check can fail: a store that said t03 stopped at version 2 would not agree.
    let mut wrong = RolloutRecord {
        events: stored.events.clone(),
    };
    for e in &mut wrong.events {
        if let Some(pb::rollout_event::Kind::TenantFinished(t)) = &mut e.kind
            && t.tenant == "t03"
        {
            t.current_version = Some(2.into());
        }
    }
    ensure!(
        invariants::agrees(&fleet, &wrong).await.is_err(),
        "agrees() missed a wrong version"
    );
    daemon.stop().await?;
    let checked = invariants::check(&fleet, true).await?;
    ensure!(checked.migrations == 24, "{checked:?}");
    println!(
        "faults: two clients left mid-stream; {} events seen once each",
        stored.events.len()
    );
    report("client gone mid-stream", checked, 2);
    Ok(())
}

/// The `q`-quantile of `samples` (sorted in place), nearest rank.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// 11. Load: 32 clients, each on its own connection, call `Plan` (a page of 100 tenants),
///     `Status` (last-known) and `Watch` (to its first event) on a 1,000-tenant fleet while a
///     rollout runs on it: no call fails, and the rollout's result is whole.
#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_clients_read_a_thousand_tenant_fleet_during_a_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1000).await?;
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(DialectKind::Sqlite, 3, None)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(30)).await?;
    let stream = daemon.client().apply(request()).await?;
    let run = tokio::spawn(RolloutRecord::collect(stream));
    let id = loop {
        let listed = daemon
            .client()
            .list_rollouts(pb::ListRolloutsRequest::default())
            .await?;
        if let Some(r) = listed.rollouts.first() {
            break r.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let (addr, id, done) = (daemon.addr.clone(), id.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut took: [Vec<Duration>; 3] = Default::default();
            // Bounded: at most 20 rounds, and none once the rollout has finished.
            for _ in 0..20 {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let clock = Instant::now();
                c.plan(pb::PlanRequest {
                    fleet: FLEET.into(),
                    page_size: 100,
                    ..Default::default()
                })
                .await?;
                took[0].push(clock.elapsed());
                let clock = Instant::now();
                c.status(pb::StatusRequest {
                    fleet: FLEET.into(),
                    ..Default::default()
                })
                .await?;
                took[1].push(clock.elapsed());
                let clock = Instant::now();
                let mut events = c.watch(&id, 0).await?;
                events.message().await?.context("Watch sent no event")?;
                took[2].push(clock.elapsed());
            }
            anyhow::Ok(took)
        }));
    }
    let run = run.await??;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut took: [Vec<Duration>; 3] = Default::default();
    for c in clients {
        for (all, one) in took.iter_mut().zip(c.await??) {
            all.extend(one);
        }
    }
    let finished = run.finished().context("finished")?;
    ensure!(
        finished.succeeded == 1000 && finished.migrations_run == 3000,
        "{finished:?}"
    );
    ensure!(took.iter().all(|t| !t.is_empty()), "a call kind never ran");
    for (name, samples) in ["Plan", "Status", "Watch"].iter().zip(took.iter_mut()) {
        println!(
            "faults: load: {name}: {} calls, p50 {:?}, p99 {:?}",
            samples.len(),
            quantile(samples, 0.5),
            quantile(samples, 0.99)
        );
    }
    daemon.stop().await?;
    let checked = invariants::check(&fleet, true).await?;
    ensure!(checked.migrations == 3000, "{checked:?}");
    report("32 clients during a rollout", checked, 0);
    Ok(())
}
