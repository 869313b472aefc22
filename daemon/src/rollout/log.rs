//! The event log of a rollout: the rollout appends, any number of readers follow it by
//! sequence number. A slow or vanished reader never stalls the rollout (DESIGN.md rule 7).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use crate::model::{EventKind, RolloutEvent};
use tokio::sync::watch;

/// Finished rollouts kept for late readers; older ones are forgotten.
const KEEP_FINISHED: usize = 256;

/// Events of one rollout, in order, `seq` 1, 2, 3…
pub struct RolloutLog {
    /// The rollout's id (a UUID).
    pub id: Arc<str>,
    events: Mutex<Vec<RolloutEvent>>,
    /// Number of events appended; readers wait on changes.
    len: watch::Sender<usize>,
}

impl RolloutLog {
    fn new(id: Arc<str>) -> Self {
        Self {
            id,
            events: Mutex::new(Vec::new()),
            len: watch::Sender::new(0),
        }
    }

    /// Appends an event, stamping its rollout id, sequence number and time.
    pub(crate) fn append(&self, kind: EventKind) {
        let mut events = self.events.lock().expect("event log lock poisoned");
        let seq = events.len() as u64 + 1;
        events.push(RolloutEvent {
            rollout_id: self.id.clone(),
            seq,
            at_unix_ms: chrono::Utc::now().timestamp_millis(),
            kind,
        });
        self.len.send_replace(events.len());
    }

    /// Events with `seq > after`, waiting until there is at least one. Returns an empty
    /// vector only when the rollout has finished and everything was read.
    pub async fn next_after(&self, after: u64) -> Vec<RolloutEvent> {
        let mut rx = self.len.subscribe();
        loop {
            {
                let events = self.events.lock().expect("event log lock poisoned");
                if (events.len() as u64) > after {
                    return events[after as usize..].to_vec();
                }
                if is_finished(&events) {
                    return Vec::new();
                }
            }
            if rx.changed().await.is_err() {
                return Vec::new();
            }
        }
    }

    /// True once the `RolloutFinished` event is in the log.
    pub fn finished(&self) -> bool {
        is_finished(&self.events.lock().expect("event log lock poisoned"))
    }
}

fn is_finished(events: &[RolloutEvent]) -> bool {
    events
        .last()
        .is_some_and(|e| matches!(e.kind, EventKind::RolloutFinished(_)))
}

/// Rollouts by id: every running one, and the last 256 finished ones.
#[derive(Default)]
pub(crate) struct Rollouts {
    inner: Mutex<Index>,
}

/// Logs by id, and ids in start order (for forgetting the oldest finished ones).
#[derive(Default)]
struct Index {
    by_id: HashMap<String, Arc<RolloutLog>>,
    order: VecDeque<String>,
}

impl Rollouts {
    /// Creates and registers an empty log with a new id.
    pub(crate) fn create(&self) -> Arc<RolloutLog> {
        let log = Arc::new(RolloutLog::new(uuid::Uuid::new_v4().to_string().into()));
        let mut inner = self.inner.lock().expect("rollouts lock poisoned");
        let Index { by_id: map, order } = &mut *inner;
        map.insert(log.id.to_string(), log.clone());
        order.push_back(log.id.to_string());
        while order.len() > KEEP_FINISHED {
            let oldest_finished = order
                .iter()
                .position(|id| map.get(id).is_none_or(|l| l.finished()));
            match oldest_finished {
                Some(i) => {
                    let id = order.remove(i).expect("index in range");
                    map.remove(&id);
                }
                None => break,
            }
        }
        log
    }

    /// The log of rollout `id`, if it is running or recent.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<RolloutLog>> {
        self.inner
            .lock()
            .expect("rollouts lock poisoned")
            .by_id
            .get(id)
            .cloned()
    }
}
