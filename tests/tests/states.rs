//! A rollout's state changes are checked transitions: a cancel or a pause that races the
//! end of a rollout either lands before the end (and the rollout is cancelled, or paused and
//! then ended) or is refused; never does a finished rollout turn `cancelled` or `paused`,
//! and never does a rollout end twice. Run on a PostgreSQL control store, where the runner's
//! end and the caller's request are separate connections.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Client, Control};
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, pb};

/// Rollouts raced per kind of request.
const ROUNDS: usize = 200;

/// Polls rollout `id` until it is finished (resuming it when it is left paused); returns
/// it.
async fn settle(client: &mut Client, id: &str) -> anyhow::Result<pb::Rollout> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.rollout(id).await?;
        let state = pb::RolloutState::try_from(r.state)?;
        match state {
            pb::RolloutState::Succeeded | pb::RolloutState::Failed => return Ok(r),
            pb::RolloutState::Cancelled if r.finished_at_unix_ms.is_some() => return Ok(r),
            pb::RolloutState::Paused => {
                // The end may come between the read and the resume: then the resume is
                // refused, and the next read says so.
                let _ = client.control(id, Control::Resume).await;
            }
            _ => {}
        }
        ensure!(Instant::now() < deadline, "rollout {id} never ended: {r:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The rollout's one `RolloutFinished`: the last event stored, in the state `Get` says.
async fn ended_once(client: &mut Client, r: &pb::Rollout) -> anyhow::Result<()> {
    let record = avocet_client::RolloutRecord::collect(client.watch(&r.id, 0).await?).await?;
    let finished: Vec<&pb::RolloutEvent> = record
        .events
        .iter()
        .filter(|e| matches!(e.kind, Some(pb::rollout_event::Kind::RolloutFinished(_))))
        .collect();
    let last = finished.last().context("no RolloutFinished")?;
    let Some(pb::rollout_event::Kind::RolloutFinished(f)) = &last.kind else {
        unreachable!()
    };
    ensure!(
        finished.len() == 1 && last.seq == r.last_seq,
        "rollout {} ended more than once, or has events after its end: {} RolloutFinished, \
         the last at {} of {}",
        r.id,
        finished.len(),
        last.seq,
        r.last_seq
    );
    ensure!(
        f.state == r.state,
        "rollout {} finished {:?} but is {:?}",
        r.id,
        pb::RolloutState::try_from(f.state),
        pb::RolloutState::try_from(r.state)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_or_a_pause_at_the_end_never_changes_a_finished_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let control = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    config.control_store = control.tenants[0].dsn.clone();
    let daemon = TestDaemon::start_with(config).await?;
    let mut client = daemon.client();
    let (mut cancelled, mut refused, mut paused) = (0, 0, 0);
    for round in 0..2 * ROUNDS {
        let action = if round % 2 == 0 {
            Control::Cancel
        } else {
            Control::Pause
        };
        // The request goes out as the tenant's end arrives (the rollout's end follows in
        // a few ms), at a spread of moments around it.
        let mut events = client
            .apply(pb::ApplyRequest {
                fleet: "test".into(),
                ..Default::default()
            })
            .await?;
        let mut id = String::new();
        while let Some(e) = events.message().await? {
            id.clone_from(&e.rollout_id);
            if matches!(e.kind, Some(pb::rollout_event::Kind::TenantFinished(_))) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_micros((round as u64 * 37) % 2000)).await;
        let answer = client.control(&id, action).await;
        drop(events);
        let r = settle(&mut client, &id).await?;
        let state = pb::RolloutState::try_from(r.state)?;
        match (action, &answer) {
            (Control::Cancel, Ok(_)) => {
                cancelled += 1;
                ensure!(
                    state == pb::RolloutState::Cancelled,
                    "cancel accepted, rollout {id} {state:?}"
                );
            }
            (Control::Pause | Control::Resume, Ok(_)) => {
                paused += 1;
                ensure!(
                    state == pb::RolloutState::Succeeded,
                    "pause accepted then resumed, rollout {id} {state:?}"
                );
            }
            (_, Err(e)) => {
                refused += 1;
                ensure!(
                    e.to_string().contains("cannot be"),
                    "{action:?} of {id}: {e}"
                );
                ensure!(
                    state == pb::RolloutState::Succeeded,
                    "{action:?} refused, rollout {id} {state:?}"
                );
            }
        }
        ended_once(&mut client, &r).await?;
    }
    println!("states: {cancelled} cancelled, {paused} paused, {refused} refused at the end");
    ensure!(
        refused > 0,
        "no request reached a finished rollout: the race was not run"
    );
    daemon.stop().await
}
