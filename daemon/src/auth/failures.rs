//! Failed authentication (issue 25, finding 16): each refusal is logged with the peer and
//! the reason (inside the call's server span, which names the RPC), at most
//! [`LOGS_PER_MINUTE`] lines a minute, and counted in `avocet.auth.failures` (by a
//! [`Refusal`] label); past [`FREE_FAILURES`] refusals in a minute a peer address's calls
//! wait before they are looked at ([`Failures::delay`], doubling from [`FIRST_DELAY`] up to
//! `[limits] max_auth_failure_delay`); a peer address with [`MAX_FAILURES`] refusals in a
//! minute is refused (`RESOURCE_EXHAUSTED`) until that minute has passed, right token or
//! not, so guessing tokens is slowed to a crawl.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use opentelemetry::{KeyValue, metrics::Counter};

/// Refusals of one peer address in one window before it is locked out.
pub(crate) const MAX_FAILURES: u32 = 50;

/// The window.
const WINDOW: Duration = Duration::from_secs(60);

/// Log lines about refusals per window, all peers together.
const LOGS_PER_MINUTE: u32 = 60;

/// Peers remembered at once; past it the table starts afresh (bounded memory).
const MAX_PEERS: usize = 10_000;

/// Refusals of one peer address in one window that cost nothing (a mistyped token).
const FREE_FAILURES: u32 = 5;

/// The wait of a call after [`FREE_FAILURES`] + 1 refusals; each further refusal doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(10);

/// Why a call was refused, the label of `avocet.auth.failures` (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A token that matches none, or an `authorization` value that is not a bearer token.
    Token,
    /// A client certificate whose subject maps to no identity, or does not parse.
    Certificate,
    /// Neither a token nor a certificate.
    Missing,
    /// The peer is locked out ([`MAX_FAILURES`]).
    LockedOut,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Certificate => "certificate",
            Self::Missing => "missing",
            Self::LockedOut => "locked_out",
        }
    }
}

/// Refusals by peer address.
#[derive(Default)]
pub(crate) struct Failures {
    inner: Mutex<Inner>,
    /// The longest wait [`Failures::delay`] gives; zero: no wait.
    pub(super) max_delay: Duration,
    /// `avocet.auth.failures`, once the server has a meter.
    counter: OnceLock<Counter<u64>>,
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

    /// How long a call from `peer` waits before the gate looks at it: nothing for its
    /// first [`FREE_FAILURES`] refusals of the window, then [`FIRST_DELAY`] doubled for each
    /// further one, at most `max_delay`; nothing once it is locked out (refused at once).
    pub(crate) fn delay(&self, peer: Option<IpAddr>) -> Duration {
        let Some(peer) = peer else {
            return Duration::ZERO;
        };
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = match inner.peers.get(&peer) {
            Some((since, n)) if since.elapsed() < WINDOW => *n,
            _ => 0,
        };
        if n <= FREE_FAILURES || n >= MAX_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (n - FREE_FAILURES - 1).min(20);
        FIRST_DELAY
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// Counts refusals in `counter` from now on.
    pub(crate) fn count_in(&self, counter: Counter<u64>) {
        let _ = self.counter.set(counter);
    }

    /// Counts one refusal in `avocet.auth.failures` (a locked-out peer's calls are counted
    /// here, never logged one by one).
    pub(crate) fn count(&self, why: Refusal) {
        if let Some(counter) = self.counter.get() {
            counter.add(1, &[KeyValue::new("reason", why.as_str())]);
        }
    }

    /// Counts one refusal of `peer` for `reason`, and logs it within the rate.
    pub(crate) fn record(&self, peer: Option<IpAddr>, why: Refusal, reason: &str) {
        self.count(why);
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
            failures.record(
                guesser,
                Refusal::Token,
                "the token is not one this daemon knows",
            );
        }
        assert!(failures.locked(guesser));
        assert!(!failures.locked(other));
        assert_eq!(failures.total(), u64::from(MAX_FAILURES));
    }

    /// Finding 16: a peer's calls wait longer with each refusal past the free ones, up to
    /// the configured bound, and not at all once it is locked out (refused at once) or for
    /// another peer.
    #[test]
    fn a_failing_peer_is_slowed_down_gradually() {
        let failures = Failures {
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        let (guesser, other) = (Some([10, 0, 0, 7].into()), Some([10, 0, 0, 8].into()));
        let mut waits = Vec::new();
        for _ in 0..MAX_FAILURES {
            failures.record(guesser, Refusal::Token, "wrong");
            waits.push(failures.delay(guesser).as_millis());
        }
        assert_eq!(&waits[..9], [0, 0, 0, 0, 0, 10, 20, 40, 80]);
        assert!(
            waits.windows(2).all(|w| w[0] <= w[1] || w[1] == 0),
            "{waits:?}"
        );
        assert_eq!(waits[MAX_FAILURES as usize - 2], 1000);
        assert_eq!(
            waits[MAX_FAILURES as usize - 1],
            0,
            "locked out: refused at once"
        );
        assert_eq!(failures.delay(other), Duration::ZERO);
        let off = Failures::default();
        for _ in 0..20 {
            off.record(guesser, Refusal::Token, "wrong");
        }
        assert_eq!(off.delay(guesser), Duration::ZERO, "max_delay 0: no wait");
    }
}
