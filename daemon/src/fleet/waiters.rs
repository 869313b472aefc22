//! The lock-wait budget (DESIGN.md rule 7): at most `max_lock_waiters_per_host` tenants of
//! one database server may be retrying a migration whose statement gave up waiting for a
//! lock. Others wait their turn here, in the daemon, never in the server's lock queue, so a
//! fleet never piles lock requests onto one server.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One semaphore per server, made on first use.
pub(crate) struct LockWaiters {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl LockWaiters {
    /// At most `per_host` retrying tenants per server.
    pub(crate) fn new(per_host: usize) -> Self {
        Self {
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until a tenant of `host` may retry; the retry lasts while the permit is held.
    pub(crate) async fn enter(&self, host: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        // Never closed, so acquiring cannot fail.
        sem.acquire_owned()
            .await
            .expect("lock-wait semaphores are never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_more_than_the_budget_retry_on_one_server_at_once() {
        let waiters = LockWaiters::new(2);
        let a = waiters.enter("db:5432").await;
        let _b = waiters.enter("db:5432").await;
        let third = waiters.enter("db:5432");
        tokio::pin!(third);
        assert!(
            futures::poll!(third.as_mut()).is_pending(),
            "a third waits its turn"
        );
        let _other_server = waiters.enter("other:5432").await;
        drop(a);
        let _c = third.await;
    }
}
