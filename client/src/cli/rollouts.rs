//! `avocet rollouts …`, and following a rollout's events (apply, rollback, watch).

use anyhow::Context;
use avocet_client::{Client, Control, Events, pb};

use super::{Output, RolloutsCommand, State, json, progress, text};

/// Runs `avocet rollouts …` (`fleet`: the global `--fleet`); true unless the command
/// reports a failure.
pub(crate) async fn run(
    client: &mut Client,
    cmd: RolloutsCommand,
    fleet: Option<String>,
    out: Output,
    addr: &str,
) -> anyhow::Result<bool> {
    match cmd {
        RolloutsCommand::List { state, limit } => {
            let resp = client
                .list_rollouts(pb::ListRolloutsRequest {
                    fleet: fleet.unwrap_or_default(),
                    state: state.map_or(pb::RolloutState::Unspecified, wire_state) as i32,
                    page_size: limit,
                    page_token: String::new(),
                })
                .await?;
            match out {
                Output::Json => json::print(&json::rollouts(&resp.rollouts)),
                Output::Text => text::rollouts(&resp.rollouts),
            }
            Ok(true)
        }
        RolloutsCommand::Get { id } => {
            let rollout = client.rollout(&id).await?;
            show(&rollout, out);
            Ok(true)
        }
        RolloutsCommand::Watch { id, from } => {
            follow(client.watch(&id, from).await?, out, addr, None).await
        }
        RolloutsCommand::Cancel { id } => control(client, &id, Control::Cancel, out).await,
        RolloutsCommand::Pause { id } => control(client, &id, Control::Pause, out).await,
        RolloutsCommand::Resume { id } => control(client, &id, Control::Resume, out).await,
    }
}

async fn control(
    client: &mut Client,
    id: &str,
    action: Control,
    out: Output,
) -> anyhow::Result<bool> {
    let rollout = client.control(id, action).await?;
    show(&rollout, out);
    Ok(true)
}

fn show(rollout: &pb::Rollout, out: Output) {
    match out {
        Output::Json => json::print(&json::rollout(rollout)),
        Output::Text => text::rollout(rollout),
    }
}

fn wire_state(s: State) -> pb::RolloutState {
    match s {
        State::Pending => pb::RolloutState::Pending,
        State::Running => pb::RolloutState::Running,
        State::Paused => pb::RolloutState::Paused,
        State::Succeeded => pb::RolloutState::Succeeded,
        State::Failed => pb::RolloutState::Failed,
        State::Cancelled => pb::RolloutState::Cancelled,
        State::Interrupted => pb::RolloutState::Interrupted,
    }
}

/// A rollout just started: follow it, or with `detach` print its id and return. `target`:
/// the version an apply asked for (`--to`), to say when a tenant is already past it.
pub(crate) async fn started(
    mut events: Events,
    out: Output,
    detach: bool,
    addr: &str,
    target: Option<String>,
) -> anyhow::Result<bool> {
    if !detach {
        return follow(events, out, addr, target).await;
    }
    let first = events
        .message()
        .await
        .context("reading the rollout's first event")?
        .context("the daemon closed the stream before the rollout started")?;
    match out {
        Output::Json => json::print(&serde_json::json!({ "rollout_id": first.rollout_id })),
        Output::Text => super::emit(&format!("{}\n", first.rollout_id)),
    }
    Ok(true)
}

/// Prints a rollout's events as they come; true when it ended with no tenant failed. A
/// stream that breaks off is one sentence saying what is known and how to look on: the
/// daemon stopping (`ABORTED`) leaves the rollout interrupted; a lost connection (the daemon
/// died, the network failed) says nothing of the rollout, so it names `rollouts get`.
pub(crate) async fn follow(
    mut events: Events,
    out: Output,
    addr: &str,
    target: Option<String>,
) -> anyhow::Result<bool> {
    let mut view = progress::RolloutView::to(target);
    let mut ok = true;
    let mut id = String::new();
    while let Some(event) = events
        .message()
        .await
        .map_err(|status| broken_off(&status, addr, &id))?
    {
        id.clone_from(&event.rollout_id);
        if let Some(pb::rollout_event::Kind::RolloutFinished(f)) = &event.kind {
            let state = pb::RolloutState::try_from(f.state).unwrap_or_default();
            ok = f.failed == 0
                && !matches!(
                    state,
                    pb::RolloutState::Cancelled | pb::RolloutState::Interrupted
                );
        }
        match out {
            Output::Json => json::print(&json::event(&event)),
            Output::Text => view.show(&event),
        }
    }
    Ok(ok)
}

/// What the client can say when rollout `id`'s stream (empty before its first event) from
/// the daemon at `addr` broke off with `status` (kept for `--output json`).
fn broken_off(status: &tonic::Status, addr: &str, id: &str) -> anyhow::Error {
    super::fail::Explained {
        sentence: explain(status, addr, id).to_string(),
        rejection: status.clone().into(),
    }
    .into()
}

/// The sentence of [`broken_off`].
fn explain(status: &tonic::Status, addr: &str, id: &str) -> anyhow::Error {
    let look = match id {
        "" => "avocet rollouts list".to_owned(),
        id => format!("avocet rollouts get {id}"),
    };
    match status.code() {
        // The daemon is shutting down: the rollout stops with it (interrupted, resumable).
        tonic::Code::Aborted => {
            let resume = match id {
                "" => "avocet rollouts list".to_owned(),
                id => format!("avocet rollouts resume {id}"),
            };
            anyhow::anyhow!(
                "the daemon at {addr} ended the stream: {}; the rollout stops there; resume \
                 it: {resume}",
                status.message()
            )
        }
        // The connection went (the daemon died or the network failed), or the daemon went
        // silent: nothing is known of the rollout from here.
        tonic::Code::Unavailable
        | tonic::Code::Unknown
        | tonic::Code::Internal
        | tonic::Code::Cancelled
        | tonic::Code::DeadlineExceeded => {
            let how = match status.code() {
                tonic::Code::DeadlineExceeded => "stopped answering",
                _ => "was lost",
            };
            anyhow::anyhow!(
                "the connection to the daemon at {addr} {how}; what became of the rollout is \
                 not known here (a daemon that stopped leaves it interrupted): {look}"
            )
        }
        // The daemon ended this stream on purpose and goes on running the rollout.
        _ => anyhow::anyhow!(
            "the daemon at {addr} ended the stream: {}; the rollout continues there: \
             avocet rollouts watch {}",
            status.message(),
            if id.is_empty() {
                "ID (avocet rollouts list)"
            } else {
                id
            }
        ),
    }
}
