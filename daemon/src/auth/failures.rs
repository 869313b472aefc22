//! Failed authentication (issue 25, finding 16): each refusal is logged with the peer and
//! the reason (inside the call's server span, which names the RPC), at most [`LOGS_PER_MINUTE`] lines a minute; a peer address with
//! [`MAX_FAILURES`] refusals in a minute is refused (`RESOURCE_EXHAUSTED`) until that
//! minute has passed, right token or not, so guessing tokens is slowed to a crawl.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Refusals of one peer address in one window before it is locked out.
pub(crate) const MAX_FAILURES: u32 = 50;

/// The window.
const WINDOW: Duration = Duration::from_secs(60);

/// Log lines about refusals per window, all peers together.
const LOGS_PER_MINUTE: u32 = 60;

/// Peers remembered at once; past it the table starts afresh (bounded memory).
const MAX_PEERS: usize = 10_000;

/// Refusals by peer address.
#[derive(Default)]
pub(crate) struct Failures {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    peers: HashMap<IpAddr, (Instant, u32)>,
    logged: Option<(Instant, u32)>,
    total: u64,
}

impl Failures {
    /// True while `peer` is locked out.
    pub(crate) fn locked(&self, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer else { return false };
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .peers
            .get(&peer)
            .is_some_and(|(since, n)| since.elapsed() < WINDOW && *n >= MAX_FAILURES)
    }

    /// Counts one refusal of `peer` for `reason`, and logs it within the rate.
    pub(crate) fn record(&self, peer: Option<IpAddr>, reason: &str) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.total += 1;
        if let Some(peer) = peer {
            if inner.peers.len() >= MAX_PEERS && !inner.peers.contains_key(&peer) {
                inner.peers.retain(|_, (since, _)| since.elapsed() < WINDOW);
                if inner.peers.len() >= MAX_PEERS {
                    inner.peers.clear();
                }
            }
            let entry = inner.peers.entry(peer).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
        }
        let now = Instant::now();
        let logged = match inner.logged {
            Some((since, n)) if since.elapsed() < WINDOW => (since, n + 1),
            _ => (now, 1),
        };
        inner.logged = Some(logged);
        if logged.1 <= LOGS_PER_MINUTE {
            tracing::warn!(
                peer = ?peer,
                reason,
                refusals = inner.total,
                "authentication refused"
            );
        }
    }

    /// Refusals since start.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, finding 16: a peer is locked out after MAX_FAILURES refusals; others not.
    #[test]
    fn a_guessing_peer_is_locked_out() {
        let failures = Failures::default();
        let (guesser, other) = (Some([10, 0, 0, 7].into()), Some([10, 0, 0, 8].into()));
        for _ in 0..MAX_FAILURES {
            assert!(!failures.locked(guesser));
            failures.record(guesser, "the token is not one this daemon knows");
        }
        assert!(failures.locked(guesser));
        assert!(!failures.locked(other));
        assert_eq!(failures.total(), u64::from(MAX_FAILURES));
    }
}
