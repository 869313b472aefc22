//! Rollouts as durable jobs, in-process: waves with a canary, per-host concurrency, a
//! failing canary, the failure threshold, pause, resume and cancel, watching again from a
//! sequence number, Get and List, and fleet-sized reads. Each scenario runs with the
//! control store on SQLite (the default) and on PostgreSQL.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, ensure};
use avocet_client::{Control, RolloutRecord};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb, request};

/// The two control stores: a SQLite file of the daemon's own, or a fresh PostgreSQL
/// database (dropped with the returned fleet).
async fn control_stores() -> anyhow::Result<Vec<(Option<String>, Option<Fleet>)>> {
    let store = Fleet::postgres(1).await?;
    let dsn = store.tenants[0].dsn.clone();
    Ok(vec![(None, None), (Some(dsn), Some(store))])
}

fn kind(e: &pb::RolloutEvent) -> &pb::rollout_event::Kind {
    e.kind.as_ref().expect("every event has a kind")
}

/// A set of three quick migrations, the second of which sleeps `sleep_s` on PostgreSQL.
fn slow_set(sleep_s: f64) -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write("0002_slow.up.sql", &format!("SELECT pg_sleep({sleep_s});"))?;
    set.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
    Ok(set)
}

async fn daemon(
    fleet: &Fleet,
    set: &MigrationCopy,
    store: &Option<String>,
    concurrency: usize,
) -> anyhow::Result<TestDaemon> {
    let mut config = TestDaemon::config(fleet, set.path(), Duration::from_secs(30))?;
    config.fleets.get_mut(FLEET).context("fleet")?.concurrency = concurrency;
    if let Some(store) = store {
        config.control_store = store.clone();
    }
    TestDaemon::start_with(config).await
}

fn strategy(canary: u32, wave: &str, concurrency: u32, per_host: u32) -> Option<pb::Strategy> {
    Some(pb::Strategy {
        canary: Some(canary),
        wave_size: wave.into(),
        concurrency: Some(concurrency),
        per_host_concurrency: Some(per_host),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_tenants_in_waves_behind_a_canary() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(300).await?;
    let set = slow_set(0.0)?;
    for (store, _keep) in control_stores().await? {
        let daemon = daemon(&fleet, &set, &store, 8).await?;
        let run = daemon
            .apply(pb::ApplyRequest {
                strategy: strategy(1, "10%", 16, 8),
                ..request()
            })
            .await?;
        let summary = run.finished().context("finished")?;
        ensure!(
            summary.succeeded == 300 && summary.migrations_run == 900,
            "{summary:?}"
        );
        ensure!(summary.state == pb::RolloutState::Succeeded as i32);
        // Waves: the canary alone, then ten of 30 (the last 29).
        let waves: Vec<(u32, bool, u32)> = run
            .events
            .iter()
            .filter_map(|e| match kind(e) {
                pb::rollout_event::Kind::WaveStarted(w) => {
                    Some((w.index, w.canary, w.tenant_count))
                }
                _ => None,
            })
            .collect();
        ensure!(waves.len() == 11 && waves[0] == (0, true, 1), "{waves:?}");
        ensure!(
            waves[1] == (1, false, 30) && waves[10] == (10, false, 29),
            "{waves:?}"
        );
        // The canary finished before any other tenant started, and no more than 8 tenants
        // (one server) were ever in flight at once.
        let mut in_flight = 0i32;
        let mut most = 0;
        let mut canary_done = false;
        for e in &run.events {
            match kind(e) {
                pb::rollout_event::Kind::TenantStarted(t) => {
                    ensure!(
                        t.tenant == "t00" || canary_done,
                        "{} before the canary",
                        t.tenant
                    );
                    in_flight += 1;
                    most = most.max(in_flight);
                }
                pb::rollout_event::Kind::TenantFinished(t) => {
                    canary_done |= t.tenant == "t00";
                    in_flight -= 1;
                }
                _ => {}
            }
        }
        ensure!(
            (2..=8).contains(&most),
            "{most} tenants at once on one server"
        );
        let id = run.id().context("id")?.to_owned();
        let got = daemon.client().rollout(&id).await?;
        ensure!(got.state == pb::RolloutState::Succeeded as i32 && got.succeeded == 300);
        ensure!(got.waves == 11 && got.pending == 0, "{got:?}");
        ensure!(
            got.audit
                .first()
                .is_some_and(|a| a.caller.starts_with("anonymous (peer 127.0.0.1"))
        );
        daemon.stop().await?;
        for i in 0..300 {
            fleet
                .exec(
                    i,
                    "DROP TABLE a, b, avocet_migrations, avocet_migrations_log",
                )
                .await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_canary_stops_everything_else() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(6).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    // The canary already has the table: its migration fails.
    fleet.exec(0, "CREATE TABLE a (x int)").await?;
    for (store, _keep) in control_stores().await? {
        let daemon = daemon(&fleet, &set, &store, 4).await?;
        let run = daemon
            .apply(pb::ApplyRequest {
                strategy: strategy(1, "", 4, 0),
                ..request()
            })
            .await?;
        let summary = run.finished().context("finished")?;
        ensure!(summary.failed == 1 && summary.skipped == 5, "{summary:?}");
        ensure!(summary.state == pb::RolloutState::Failed as i32);
        for i in 1..6 {
            ensure!(
                !fleet.objects(i, "BASE TABLE").await?.contains("a"),
                "tenant {i} ran"
            );
        }
        daemon.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_failures_no_new_tenant_starts() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(10).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    for i in [1, 2, 3] {
        fleet.exec(i, "CREATE TABLE a (x int)").await?;
    }
    let daemon = daemon(&fleet, &set, &None, 1).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            strategy: Some(pb::Strategy {
                concurrency: Some(1),
                max_failures: "1".into(),
                ..Default::default()
            }),
            ..request()
        })
        .await?;
    let summary = run.finished().context("finished")?;
    // t00 succeeds, t01 and t02 fail (two failures are past one), the rest never start.
    ensure!(
        (summary.succeeded, summary.failed, summary.skipped) == (1, 2, 7),
        "{summary:?}"
    );
    ensure!(!fleet.objects(4, "BASE TABLE").await?.contains("a"));
    daemon.stop().await
}

/// Waits until `events` shows `n` finished tenants; returns the events so far.
async fn until_finished(
    events: &mut avocet_client::Events,
    n: usize,
) -> anyhow::Result<Vec<pb::RolloutEvent>> {
    let mut seen = Vec::new();
    let mut finished = 0;
    while finished < n {
        let e = events.message().await?.context("stream ended early")?;
        if matches!(kind(&e), pb::rollout_event::Kind::TenantFinished(_)) {
            finished += 1;
        }
        seen.push(e);
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_cancel_mid_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(8).await?;
    let set = slow_set(0.3)?;
    for (store, _keep) in control_stores().await? {
        let daemon = daemon(&fleet, &set, &store, 1).await?;
        let mut client = daemon.client();
        let mut events = client.apply(request()).await?;
        let first = until_finished(&mut events, 1).await?;
        let id = first[0].rollout_id.clone();
        let paused = client.control(&id, Control::Pause).await?;
        ensure!(
            paused.state == pb::RolloutState::Paused as i32,
            "{paused:?}"
        );
        // The tenant in flight finishes; none starts while paused.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let during = client.rollout(&id).await?;
        ensure!(during.state == pb::RolloutState::Paused as i32);
        let done_while_paused = during.succeeded;
        ensure!(done_while_paused <= 2, "{during:?}");
        tokio::time::sleep(Duration::from_millis(700)).await;
        ensure!(
            client.rollout(&id).await?.succeeded == done_while_paused,
            "a tenant ran while paused"
        );
        client.control(&id, Control::Resume).await?;
        // A tenant runs again once resumed; then cancel.
        let resumed = tokio::time::timeout(Duration::from_secs(20), async {
            while client.rollout(&id).await?.succeeded <= done_while_paused {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        });
        resumed.await.context("no tenant ran after resume")??;
        let cancelled = client.control(&id, Control::Cancel).await?;
        ensure!(
            cancelled.state == pb::RolloutState::Cancelled as i32,
            "{cancelled:?}"
        );
        let rest = RolloutRecord::collect(events).await?;
        let summary = rest.finished().context("finished")?;
        ensure!(
            summary.state == pb::RolloutState::Cancelled as i32,
            "{summary:?}"
        );
        ensure!(summary.skipped > 0 && summary.succeeded + summary.failed + summary.skipped == 8);
        let got = client.rollout(&id).await?;
        let methods: Vec<&str> = got.audit.iter().map(|a| a.method.as_str()).collect();
        ensure!(
            methods
                == [
                    "avocet.v1.Migrator/Apply",
                    "avocet.v1.Rollouts/Pause",
                    "avocet.v1.Rollouts/Resume",
                    "avocet.v1.Rollouts/Cancel"
                ],
            "{methods:?}"
        );
        let err = client.control(&id, Control::Resume).await.unwrap_err();
        ensure!(err.code() == Some(tonic::Code::FailedPrecondition), "{err}");
        daemon.stop().await?;
        for i in 0..8 {
            fleet
                .exec(
                    i,
                    "DROP TABLE IF EXISTS a, b, avocet_migrations, avocet_migrations_log",
                )
                .await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_again_from_the_last_seq_misses_nothing_and_repeats_nothing() -> anyhow::Result<()>
{
    let fleet = Fleet::postgres(6).await?;
    let set = slow_set(0.1)?;
    for (store, _keep) in control_stores().await? {
        let daemon = daemon(&fleet, &set, &store, 2).await?;
        let mut client = daemon.client();
        // The client goes away after two tenants; the rollout goes on.
        let mut events = client.apply(request()).await?;
        let mut seen = until_finished(&mut events, 2).await?;
        drop(events);
        let id = seen[0].rollout_id.clone();
        // Watch again from the last seen event, leave once more, then watch to the end.
        let mut again = client.watch(&id, seen.last().context("seen")?.seq).await?;
        seen.extend(until_finished(&mut again, 1).await?);
        drop(again);
        let rest = client.watch(&id, seen.last().context("seen")?.seq).await?;
        seen.extend(RolloutRecord::collect(rest).await?.events);
        let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
        ensure!(
            seqs == (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{seqs:?}"
        );
        let record = RolloutRecord { events: seen };
        ensure!(record.finished().context("finished")?.succeeded == 6);
        // A watcher after the end replays everything and ends.
        let replay = RolloutRecord::collect(client.watch(&id, 0).await?).await?;
        ensure!(replay.events.len() == seqs.len());
        daemon.stop().await?;
        for i in 0..6 {
            fleet
                .exec(
                    i,
                    "DROP TABLE a, b, avocet_migrations, avocet_migrations_log",
                )
                .await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rollouts_are_listed_by_fleet_and_state_in_pages() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let set = MigrationCopy::of(fleet.dialect)?;
    let daemon = daemon(&fleet, &set, &None, 2).await?;
    let mut ids = Vec::new();
    for dry_run in [true, true, false] {
        let run = daemon
            .apply(pb::ApplyRequest {
                dry_run,
                ..request()
            })
            .await?;
        ids.push(run.id().context("id")?.to_owned());
    }
    let mut client = daemon.client();
    let first = client
        .list_rollouts(pb::ListRolloutsRequest {
            fleet: FLEET.into(),
            page_size: 2,
            ..Default::default()
        })
        .await?;
    ensure!(first.rollouts.len() == 2 && !first.next_page_token.is_empty());
    ensure!(first.rollouts[0].id == ids[2], "newest first");
    let second = client
        .list_rollouts(pb::ListRolloutsRequest {
            fleet: FLEET.into(),
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await?;
    ensure!(second.rollouts.len() == 1 && second.next_page_token.is_empty());
    ensure!(second.rollouts[0].id == ids[0]);
    let other = client
        .list_rollouts(pb::ListRolloutsRequest {
            fleet: "nope".into(),
            ..Default::default()
        })
        .await?;
    ensure!(other.rollouts.is_empty());
    let err = client.rollout("not-a-uuid").await.unwrap_err();
    ensure!(err.code() == Some(tonic::Code::InvalidArgument), "{err}");
    let err = client
        .rollout(&uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::NotFound), "{err}");
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_verify_and_status_answer_for_two_thousand_tenants() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2000).await?;
    let set = MigrationCopy::of(fleet.dialect)?;
    let daemon = daemon(&fleet, &set, &None, 32).await?;
    let plan = daemon.plan().await?;
    ensure!(plan.tenants.len() == 2000 && plan.tenant_count == 2000);
    let checksums: BTreeMap<&str, ()> = plan.tenants[0]
        .steps
        .iter()
        .map(|s| (s.script_checksum.as_str(), ()))
        .collect();
    ensure!(
        plan.scripts.len() == checksums.len(),
        "each script once, by checksum"
    );
    ensure!(
        plan.tenants
            .iter()
            .all(|t| t.steps.len() == 16 && t.steps.iter().all(|s| s.sql.is_empty()))
    );
    let verify = daemon.verify().await?;
    ensure!(verify.tenants.len() == 2000 && verify.tenants.iter().all(|t| t.pending == 16));
    // Verify read every tenant: their last-known state answers Status without a read.
    let known = daemon.known_status().await?;
    ensure!(
        known.tenant_count == 2000 && known.pending == 2000 && known.unknown == 0,
        "{known:?}"
    );
    ensure!(known.tenants.len() == 2000);
    let run = daemon
        .apply(pb::ApplyRequest {
            selector: avocet_tests::only(&["t00", "t01"]),
            ..request()
        })
        .await?;
    ensure!(run.finished().context("finished")?.succeeded == 2);
    let known = daemon.known_status().await?;
    ensure!(known.up_to_date == 2 && known.pending == 1998, "{known:?}");
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_tenant_costs_its_deadline_not_the_whole_status() -> anyhow::Result<()> {
    // A listener that accepts and never answers stands in for a hung server.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = silent.local_addr()?.port();
    let _accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut fleet = Fleet::postgres(2).await?;
    fleet.tenants[1].dsn = format!("postgres://postgres@127.0.0.1:{port}/hung");
    let set = MigrationCopy::of(fleet.dialect)?;
    let daemon = daemon(&fleet, &set, &None, 2).await?;
    let clock = std::time::Instant::now();
    let status = daemon
        .client()
        .status(pb::StatusRequest {
            fleet: FLEET.into(),
            refresh: true,
            refresh_timeout_ms: 1000,
            page_size: 10,
            ..Default::default()
        })
        .await?;
    let took = clock.elapsed();
    ensure!(took < Duration::from_secs(5), "status took {took:?}");
    ensure!(status.unreachable == 1 && status.pending == 1, "{status:?}");
    let hung = status
        .tenants
        .iter()
        .find(|t| t.tenant == "t01")
        .context("t01")?;
    ensure!(hung.error.contains("1000 ms"), "{hung:?}");
    daemon.stop().await
}

/// `(version, tenants)` pairs of a status, in its order.
fn versions(status: &pb::StatusResponse) -> Vec<(Option<i64>, u32)> {
    status
        .versions
        .iter()
        .map(|v| (v.version.int(), v.tenants))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_from_last_known_counts_registered_tenants_only() -> anyhow::Result<()> {
    for (store, _store_db) in control_stores().await? {
        let mut fleet = Fleet::sqlite(3).await?;
        let dir = tempfile::tempdir()?;
        // t03 is not a database: its reading is an error.
        let garbage = dir.path().join("t03.db");
        std::fs::write(
            &garbage,
            "not a database, but long enough to be read as a header",
        )?;
        let mut broken = fleet.tenants[0].clone();
        broken.id = "t03".into();
        broken.dsn = format!("sqlite://{}?mode=rwc", garbage.display());
        fleet.tenants.push(broken);
        let set = MigrationCopy::of(fleet.dialect)?;
        // Both daemons below share one control store.
        let store = store.unwrap_or(format!(
            "sqlite://{}/control.db?mode=rwc",
            dir.path().display()
        ));
        let first = daemon(&fleet, &set, &Some(store.clone()), 4).await?;
        let run = first
            .apply(pb::ApplyRequest {
                selector: avocet_tests::only(&["t00"]),
                ..request()
            })
            .await?;
        ensure!(run.finished().context("finished")?.succeeded == 1);
        first
            .client()
            .verify_all(pb::VerifyRequest {
                fleet: FLEET.into(),
                selector: avocet_tests::only(&["t01", "t03"]),
                ..Default::default()
            })
            .await?;
        // The whole fleet: up to date, pending, unreachable, and t02 never read.
        let all = first.known_status().await?;
        let counts = (
            all.tenant_count,
            all.up_to_date,
            all.pending,
            all.unreachable,
            all.unknown,
        );
        ensure!(counts == (4, 1, 1, 1, 1), "{all:?}");
        ensure!(
            versions(&all) == vec![(None, 1), (all.latest_version.int(), 1)],
            "{all:?}"
        );
        ensure!(all.oldest_read_at_unix_ms > 0, "{all:?}");
        let lines: BTreeMap<&str, &pb::TenantStatus> =
            all.tenants.iter().map(|t| (t.tenant.as_str(), t)).collect();
        ensure!(lines.len() == 4 && lines["t01"].pending > 0 && !lines["t03"].error.is_empty());
        // A selection is counted over the selected tenants alone.
        let some = first
            .client()
            .status(pb::StatusRequest {
                fleet: FLEET.into(),
                selector: avocet_tests::only(&["t00", "t02"]),
                ..Default::default()
            })
            .await?;
        ensure!(
            (some.tenant_count, some.up_to_date, some.unknown) == (2, 1, 1),
            "{some:?}"
        );
        ensure!(
            some.versions.len() == 1 && some.versions[0].tenants == 1,
            "{some:?}"
        );
        first.stop().await?;
        // t00 leaves the configuration: its reading no longer counts.
        let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(30))?;
        config
            .fleets
            .get_mut(FLEET)
            .context("fleet")?
            .tenants
            .remove(0);
        config.control_store = store;
        let second = TestDaemon::start_with(config).await?;
        let rest = second.known_status().await?;
        let counts = (
            rest.tenant_count,
            rest.up_to_date,
            rest.pending,
            rest.unreachable,
            rest.unknown,
        );
        ensure!(counts == (3, 0, 1, 1, 1), "{rest:?}");
        ensure!(versions(&rest) == vec![(None, 1)], "{rest:?}");
        second.stop().await?;
    }
    Ok(())
}
