//! Following a rollout: its stored events after a sequence number, then each new one as soon
//! as it is stored. Every event comes from the store, so a watcher that reconnects with its
//! last sequence number misses nothing and sees nothing twice, and a slow watcher only ever
//! slows itself.

use std::{sync::Arc, time::Duration};

use futures::Stream;
use tokio_util::sync::CancellationToken;

use super::Runner;
use crate::{
    model::{EventKind, RolloutEvent, RolloutState},
    store::StoreError,
};

/// Events read from the store per query.
const PAGE: u32 = 500;

/// How often a watcher of a rollout that this daemon does not run looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// Rollout `id`'s events with `seq > after`, stored ones first, then live ones, each as
/// `Some`; the stream ends after a `RolloutFinished` that leaves the rollout finished (or
/// interrupted and not resumed), or, when `stop` is cancelled (daemon shutdown), with a
/// last `None`: cut off before the rollout's end, which no watcher may take for its end.
pub(crate) fn watch(
    runner: Arc<Runner>,
    id: String,
    after: u64,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Option<RolloutEvent>, StoreError>> {
    async_stream::try_stream! {
        let mut seq = after;
        // The last event sent was a `RolloutFinished`: a final one ends the stream at once;
        // after an interrupted one the stream ends unless the rollout was resumed.
        let mut finished = None;
        loop {
            let events = runner.store().events_after(&id, seq, PAGE).await?;
            let read = events.len();
            for event in events {
                seq = event.seq;
                finished = match &event.kind {
                    EventKind::RolloutFinished(s) => Some(s.state),
                    _ => None,
                };
                yield Some(event);
            }
            match finished {
                Some(state) if state.is_final() => return,
                Some(_) if has_ended(&runner, &id).await? => return,
                _ => {}
            }
            if read == PAGE as usize {
                continue;
            }
            // Caught up: wait for the next stored event.
            let live = runner.stored(&id);
            tokio::select! {
                () = stop.cancelled() => {
                    yield None;
                    return;
                }
                () = wait(live, seq) => {}
            }
        }
    }
}

/// True when rollout `id` will have no further events: finished, or interrupted (or
/// paused) with no task running it here.
async fn has_ended(runner: &Runner, id: &str) -> Result<bool, StoreError> {
    if runner.stored(id).is_some() {
        return Ok(false);
    }
    let state = runner.store().rollout(id).await?.map(|r| r.state);
    Ok(!matches!(
        state,
        Some(RolloutState::Running | RolloutState::Pending)
    ))
}

async fn wait(live: Option<tokio::sync::watch::Receiver<u64>>, seq: u64) {
    match live {
        Some(mut rx) => {
            let _ = tokio::time::timeout(POLL * 4, rx.wait_for(|&stored| stored > seq)).await;
        }
        None => tokio::time::sleep(POLL).await,
    }
}
