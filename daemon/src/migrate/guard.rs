//! DESIGN.md rule 7: a migration never queues a tenant's traffic. Every statement waits at
//! most its lock guard's timeout for a lock (set by the runners, `Session::guard_sql`); one
//! that gives up has changed nothing, left the server's lock queue, and is tried again here:
//! after a jittered backoff (1 s doubling to 30 s), within the server's lock-wait budget
//! (`max_lock_waiters_per_host` tenants retrying at once; the others wait in the daemon),
//! for at most `ddl_retry_for`. Each retry is told to the observer (an event and a metric).

use std::time::Duration;

use tokio::{sync::OwnedSemaphorePermit, time::Instant};

use super::Observer;
use crate::{
    dialect::Session,
    fleet::Tenant,
    model::{LockGuard, LockRetry, Step},
};

/// How often a backoff looks whether the tenant must stop.
const STOP_POLL: Duration = Duration::from_millis(200);

/// The retries of one migration (or of one grouped transaction) on one tenant.
pub(super) struct Retries<'a> {
    tenant: &'a Tenant,
    observer: &'a dyn Observer,
    retry_for: Duration,
    /// When the first attempt gave up.
    first: Option<Instant>,
    attempt: u32,
    /// This tenant's place among its server's retrying tenants, held from the first retry
    /// to the end of the migration.
    permit: Option<OwnedSemaphorePermit>,
    /// The last holders the server named.
    pub(super) holders: String,
}

impl<'a> Retries<'a> {
    pub(super) fn new(tenant: &'a Tenant, observer: &'a dyn Observer, guard: &LockGuard) -> Self {
        Self {
            tenant,
            observer,
            retry_for: guard.retry_for,
            first: None,
            attempt: 0,
            permit: None,
            holders: String::new(),
        }
    }

    /// After statement `index` (0-based) of `step` gave up waiting for a lock on `session`
    /// (and its transaction, if any, was rolled back): names the holders, waits for the
    /// server's lock-wait budget and a backoff, tells the observer, and returns true to run
    /// the migration again; false when `ddl_retry_for` is spent or the tenant must stop.
    /// `note` says what was cleaned up before the retry.
    pub(super) async fn again(
        &mut self,
        session: &mut dyn Session,
        step: &Step,
        index: usize,
        note: Option<String>,
    ) -> bool {
        self.holders = session.holders().await;
        let first = *self.first.get_or_insert_with(Instant::now);
        if first.elapsed() >= self.retry_for || self.observer.stop_requested() {
            return false;
        }
        let queued = Instant::now();
        if self.permit.is_none() {
            self.permit = self.tenant.lock_waiter().await;
        }
        self.attempt += 1;
        // Time spent waiting for the server's budget counts toward the backoff.
        let wait = LockGuard::backoff(self.attempt, fastrand::f64())
            .saturating_sub(queued.elapsed())
            .min(self.retry_for.saturating_sub(first.elapsed()));
        let retry = LockRetry {
            tenant: self.tenant.id.clone(),
            version: step.migration.version.clone(),
            statement: index as u32 + 1,
            attempt: self.attempt,
            wait_ms: wait.as_millis() as u64,
            holders: self.holders.clone(),
            note: note.unwrap_or_default(),
        };
        tracing::info!(
            version = %retry.version,
            statement = retry.statement,
            attempt = retry.attempt,
            wait_ms = retry.wait_ms,
            holders = %retry.holders,
            "a statement gave up waiting for a lock; retrying"
        );
        self.observer.lock_retry(self.tenant, &retry).await;
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.observer.stop_requested() {
                return false;
            }
            tokio::time::sleep(STOP_POLL.min(until - Instant::now())).await;
        }
        true
    }

    /// Why the migration gave up: "statement 2 could not take its lock in 7 attempts over
    /// 600 s; holding locks: pid 4711 (…)".
    pub(super) fn gave_up(&self, label: &str) -> String {
        let over = self.first.map_or(0, |f| f.elapsed().as_secs());
        let holders = match self.holders.is_empty() {
            true => "the server named no session holding locks".to_owned(),
            false => format!("holding locks: {}", self.holders),
        };
        format!(
            "{label}: gave up waiting for a lock after {} attempt(s) over {over} s \
             (ddl_lock_timeout each, retried for up to ddl_retry_for); {holders}",
            self.attempt + 1
        )
    }
}
