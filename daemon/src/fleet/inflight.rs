//! Migrations running on their servers now, each with its session's server id, so that at
//! the end of the shutdown grace the daemon can cancel what still runs (PostgreSQL's
//! `pg_cancel_backend`, MySQL's `KILL QUERY`) and wait for it, instead of exiting while a
//! server goes on to commit a migration nobody records (issue 24, item 10).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::dialect::Database;

/// The migrations running now on this daemon's tenant sessions.
#[derive(Default)]
pub(crate) struct InFlight {
    next: AtomicU64,
    running: Arc<Mutex<HashMap<u64, Running>>>,
}

/// One tenant's migration in flight.
struct Running {
    tenant: String,
    db: Arc<dyn Database>,
    /// The server id of the session it runs on now.
    server_id: Option<u64>,
    cancelled: Arc<AtomicBool>,
}

/// A tenant's place in [`InFlight`] while its migrations run; leaves it when dropped.
pub(crate) struct Flight {
    key: u64,
    running: Arc<Mutex<HashMap<u64, Running>>>,
    cancelled: Arc<AtomicBool>,
}

impl InFlight {
    /// Enters `tenant` (of database `db`), its session not known yet.
    pub(crate) fn enter(&self, tenant: &str, db: Arc<dyn Database>) -> Flight {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let cancelled = Arc::new(AtomicBool::new(false));
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                Running {
                    tenant: tenant.to_owned(),
                    db,
                    server_id: None,
                    cancelled: cancelled.clone(),
                },
            );
        Flight {
            key,
            running: self.running.clone(),
            cancelled,
        }
    }

    /// Cancels, on its server, every migration in flight: marks each cancelled first (so
    /// its failure is told apart from a script's), then sends each session's cancel from a
    /// connection of its own, all at once. Returns how many were sent and how many could
    /// not be (each logged).
    pub(crate) async fn cancel_all(&self) -> (usize, usize) {
        let targets: Vec<(String, Arc<dyn Database>, u64)> = {
            let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            running
                .values()
                .filter_map(|r| {
                    r.cancelled.store(true, Ordering::SeqCst);
                    r.server_id.map(|id| (r.tenant.clone(), r.db.clone(), id))
                })
                .collect()
        };
        let sends = targets.iter().map(|(tenant, db, id)| async move {
            match db.cancel(*id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(tenant = %tenant, "cancelling its migration on the server: {e}");
                    false
                }
            }
        });
        let sent = futures::future::join_all(sends).await;
        let ok = sent.iter().filter(|s| **s).count();
        (ok, sent.len() - ok)
    }
}

impl Flight {
    /// The tenant's migration now runs on the session with server id `id`.
    pub(crate) fn on(&self, id: Option<u64>) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&self.key)
        {
            r.server_id = id;
        }
    }

    /// True once the daemon cancelled this tenant's migration on its server (its failure
    /// is the daemon's doing, not its script's).
    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}
