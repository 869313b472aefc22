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

use tokio::sync::{mpsc, watch};

use crate::store::{Store, Write};

/// Writes queued before a rollout waits for the store.
const QUEUE: usize = 4096;

/// Writes stored per transaction at most.
const BATCH: usize = 1000;

/// Hands writes to the writer task and tells watchers how far each rollout is stored.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Write>,
    stored: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Writer {
    /// Starts the writer task over `store`; it ends once every [`Writer`] is dropped and
    /// the queue is empty.
    pub(crate) fn start(store: Arc<Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stored = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(run(store, rx, stored.clone()));
        Self { tx, stored }
    }

    /// Queues `write`, waiting while the queue is full.
    pub(crate) async fn send(&self, write: Write) {
        // The task only ends when every sender is gone, so this cannot fail while `self`
        // lives.
        let _ = self.tx.send(write).await;
    }

    /// The sequence number up to which rollout `id`'s events are stored, as it changes.
    pub(crate) fn stored(&self, id: &str) -> watch::Receiver<u64> {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored
            .entry(id.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Waits until rollout `id`'s events up to `seq` are stored.
    pub(crate) async fn wait_stored(&self, id: &str, seq: u64) {
        let mut rx = self.stored(id);
        let _ = rx.wait_for(|&stored| stored >= seq).await;
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
    mut rx: mpsc::Receiver<Write>,
    stored: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = store.write(&batch).await {
            tracing::warn!(
                "the control store refused {} writes, retrying: {e}",
                batch.len()
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for write in &batch {
            if let Write::Event(e) = write {
                newest.insert(&e.rollout_id, e.seq);
            }
        }
        {
            let mut stored = stored.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, seq) in newest {
                stored
                    .entry(id.to_owned())
                    .or_insert_with(|| watch::Sender::new(0))
                    .send_replace(seq);
            }
        }
        batch.clear();
    }
}
