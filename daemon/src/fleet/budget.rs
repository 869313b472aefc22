//! The connection budget every tenant's pool draws from: `max_connections` across the daemon
//! and `max_connections_per_host` per database server.
//!
//! Two counts keep it: *admission* (tickets) bounds the connections the running operations
//! may use at once, and *open* permits, one held by every open connection whether in use or
//! idle in a pool, bound what the servers see. An operation takes its ticket before any
//! connection, all of it at once, so operations never hold some connections while waiting
//! for others; waiters queue in arrival order. Since admitted use never exceeds the budget,
//! a new connection that finds the open count full can always close an idle one of another
//! pool to make room.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::pool::Pool;
use crate::model::BudgetUse;

/// Admission of one operation: the connections it may use at once, globally and on its host.
pub(crate) struct Ticket {
    _global: OwnedSemaphorePermit,
    _host: Option<OwnedSemaphorePermit>,
}

/// Held by one open connection; dropping it frees a place in the budget.
pub(crate) struct OpenPermit {
    _global: OwnedSemaphorePermit,
    _host: Option<OwnedSemaphorePermit>,
}

/// Counts one waiter of [`Budget::admit`] while it lives (also when the wait is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The two counts of one scope (the daemon, or one host).
struct Counts {
    admit: Arc<Semaphore>,
    open: Arc<Semaphore>,
}

impl Counts {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            admit: Arc::new(Semaphore::new(n)),
            open: Arc::new(Semaphore::new(n)),
        })
    }
}

/// The daemon's connection budget and the pools that draw from it.
pub(crate) struct Budget {
    global: Arc<Counts>,
    /// `max_connections`, for reporting what `global` leaves.
    max: usize,
    /// Operations waiting in [`Budget::admit`] now, for reporting.
    waiting: AtomicUsize,
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Counts>>>,
    /// Every tenant pool created so far, with its host: where idle connections are found.
    pools: Mutex<Vec<(Option<String>, Pool)>>,
    /// Where [`Budget::close_one_idle`] starts its search: where it last found one.
    cursor: AtomicUsize,
    /// Notified whenever a connection closes or goes idle, so a waiting open can retry.
    closed: Notify,
    /// Tenants of one server retrying a lock-timed-out migration at once.
    pub(crate) lock_waiters: super::waiters::LockWaiters,
    /// Migrations running on their servers now.
    pub(crate) in_flight: super::inflight::InFlight,
}

impl Budget {
    /// A budget of `max` connections in all and `per_host` on each server, and of
    /// `lock_waiters` tenants per server retrying a lock-timed-out migration.
    pub(crate) fn new(max: usize, per_host: usize, lock_waiters: usize) -> Self {
        Self {
            global: Counts::new(max),
            max,
            waiting: AtomicUsize::new(0),
            per_host: per_host.min(max),
            hosts: Mutex::new(HashMap::new()),
            pools: Mutex::new(Vec::new()),
            cursor: AtomicUsize::new(0),
            closed: Notify::new(),
            lock_waiters: super::waiters::LockWaiters::new(lock_waiters),
            in_flight: super::inflight::InFlight::default(),
        }
    }

    fn host(&self, host: &str) -> Arc<Counts> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| Counts::new(self.per_host))
            .clone()
    }

    /// Waits until an operation may use `n` connections at once on `host`, taking the
    /// global share before the host's (always in that order, so two waiters never hold
    /// each other's share).
    pub(crate) async fn admit(&self, host: Option<&str>, n: u32) -> Ticket {
        let _waiting = Waiting::new(&self.waiting);
        // The semaphores are never closed, so acquiring cannot fail.
        let global = self.global.admit.clone().acquire_many_owned(n).await;
        let host = match host {
            Some(h) => self.host(h).admit.clone().acquire_many_owned(n).await.ok(),
            None => None,
        };
        Ticket {
            _global: global.expect("the budget's semaphores are never closed"),
            _host: host,
        }
    }

    /// The budget's use now, daemon-wide (a snapshot of counters; no lock is taken).
    pub(crate) fn usage(&self) -> BudgetUse {
        let used = |s: &Semaphore| self.max.saturating_sub(s.available_permits()) as u32;
        BudgetUse {
            limit: self.max as u32,
            open: used(&self.global.open),
            in_use: used(&self.global.admit),
            waiting: self.waiting.load(Ordering::Relaxed) as u32,
        }
    }

    /// A place for one new connection on `host`, closing idle connections of other pools
    /// when the budget is full.
    pub(crate) async fn open(&self, host: Option<&str>) -> OpenPermit {
        let global = self.open_one(&self.global, None).await;
        let host = match host {
            Some(h) => Some(self.open_one(&self.host(h), Some(h)).await),
            None => None,
        };
        OpenPermit {
            _global: global,
            _host: host,
        }
    }

    async fn open_one(&self, counts: &Counts, host: Option<&str>) -> OwnedSemaphorePermit {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if let Ok(permit) = counts.open.clone().try_acquire_owned() {
                return permit;
            }
            if self.close_one_idle(host).await {
                continue;
            }
            tokio::select! {
                permit = counts.open.clone().acquire_owned() => {
                    return permit.expect("the budget's semaphores are never closed");
                }
                () = &mut closed => {}
            }
        }
    }

    /// Closes one idle connection (of a pool on `host`, when given); false when none is idle.
    ///
    /// The search goes round the pools from where the last idle connection was found: a
    /// rollout leaves its idle connections in the pools of the tenants it just ran, next to
    /// each other, so a fleet of 10,000 tenants is not walked for every new connection.
    async fn close_one_idle(&self, host: Option<&str>) -> bool {
        let removed = {
            let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            let n = pools.len();
            let start = self.cursor.load(Ordering::Relaxed);
            let mut removed = None;
            for at in (0..n).map(|k| (start + k) % n) {
                let (h, pool) = &pools[at];
                if pool.status().available == 0
                    || host.is_some_and(|host| h.as_deref() != Some(host))
                {
                    continue;
                }
                let mut taken = false;
                let out = pool.retain(|_, _| std::mem::replace(&mut taken, true));
                if let Some(conn) = out.removed.into_iter().next() {
                    self.cursor.store(at, Ordering::Relaxed);
                    removed = Some(conn);
                    break;
                }
            }
            removed
        };
        match removed {
            Some(conn) => {
                conn.close().await;
                self.closed.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Registers a new tenant pool so its idle connections can be found.
    pub(crate) fn register(&self, host: Option<String>, pool: Pool) {
        self.pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((host, pool));
    }

    /// Tells waiting opens that a connection closed or went back to its pool idle.
    pub(crate) fn connection_closed(&self) {
        self.closed.notify_waiters();
    }

    /// Closes every connection idle for longer than `idle_timeout`; returns how many.
    pub(crate) async fn close_idle(&self, idle_timeout: std::time::Duration) -> usize {
        let pools: Vec<Pool> = {
            let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            pools.iter().map(|(_, p)| p.clone()).collect()
        };
        let mut closed = 0;
        for pool in pools {
            let removed = pool.retain(|_, m| m.last_used() < idle_timeout).removed;
            closed += removed.len();
            for conn in removed {
                conn.close().await;
            }
        }
        if closed > 0 {
            self.closed.notify_waiters();
        }
        closed
    }
}
