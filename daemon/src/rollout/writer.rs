//! The event writer: every rollout's events and state changes go through one task that
//! stores them in batches (one transaction each) and only then tells watchers, so a watcher
//! never sees an event the store does not have. The queue is bounded: a store that falls
//! behind slows the rollouts down rather than letting memory grow; a store that fails is
//! retried until it answers, in order, so nothing is lost or reordered.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    model::{EventKind, RolloutState, RolloutStep},
    store::{Changed, Store, StoreError, Write},
};

/// Writes queued before a rollout waits for the store.
const QUEUE: usize = 4096;

/// Writes stored per transaction at most.
const BATCH: usize = 1000;

/// What the writer task takes: a write, or a caller waiting for every write queued before.
enum Queued {
    /// Boxed: a write carries a whole event (with versions and texts), a flush a pointer.
    Write(Box<Write>),
    Flush(oneshot::Sender<()>),
}

/// Hands writes to the writer task and tells watchers how far each rollout is stored.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Queued>,
    store: Arc<Store>,
    stored: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Writer {
    /// Starts the writer task over `store`; it ends once every [`Writer`] is dropped and
    /// the queue is empty.
    pub(crate) fn start(store: Arc<Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stored = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(run(store.clone(), rx, stored.clone()));
        Self { tx, store, stored }
    }

    /// Queues `write`, waiting while the queue is full.
    pub(crate) async fn send(&self, write: Write) {
        // The task only ends when every sender is gone, so this cannot fail while `self`
        // lives.
        let _ = self.tx.send(Queued::Write(Box::new(write))).await;
    }

    /// Waits until every write queued before this call is stored.
    pub(crate) async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = stored.await;
        }
    }

    /// Applies `step` to rollout `id` in the store (a compare-and-set along the table,
    /// with the event `event(new state)`), after every write queued before it, and tells
    /// watchers once it is stored.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; nothing changed then.
    pub(crate) async fn change_state(
        &self,
        id: &str,
        step: RolloutStep,
        event: impl FnOnce(RolloutState) -> EventKind,
    ) -> Result<Changed, StoreError> {
        self.flush().await;
        let changed = self.store.change_state(id, step, event).await?;
        if let Changed::To(_, seq) = changed {
            let stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = stored.get(id) {
                s.send_if_modified(|at| {
                    let newer = seq > *at;
                    *at = (*at).max(seq);
                    newer
                });
            }
        }
        Ok(changed)
    }

    /// The sequence number up to which rollout `id`'s events are stored, as it changes.
    pub(crate) fn stored(&self, id: &str) -> watch::Receiver<u64> {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored
            .entry(id.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Forgets rollout `id`'s progress once nobody follows it live any more.
    pub(crate) fn forget(&self, id: &str) {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        if stored.get(id).is_some_and(|s| s.receiver_count() == 0) {
            stored.remove(id);
        }
    }
}

async fn run(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<Queued>,
    stored: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
) {
    let mut queued = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut queued, BATCH).await > 0 {
        for q in queued.drain(..) {
            match q {
                Queued::Write(w) => batch.push(*w),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        let mut backoff = Duration::from_millis(50);
        let newest = loop {
            if batch.is_empty() {
                break Vec::new();
            }
            match store.write(&batch).await {
                Ok(newest) => break newest,
                Err(e) => {
                    tracing::warn!(
                        "the control store refused {} writes, retrying: {e}",
                        batch.len()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        {
            let mut stored = stored.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, seq) in newest {
                stored
                    .entry(id)
                    .or_insert_with(|| watch::Sender::new(0))
                    .send_replace(seq);
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        batch.clear();
    }
}
