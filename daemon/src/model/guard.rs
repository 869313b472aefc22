//! The lock guard (DESIGN.md rule 7): how a migration's statements are kept from queueing a
//! tenant's traffic behind them.

use std::time::Duration;

use super::Script;

/// How long each statement of a migration may wait for a lock and run, and how long a
/// migration whose statement gave up on a lock keeps retrying. From the fleet's
/// `ddl_lock_timeout`, `ddl_retry_for` and `statement_timeout`, each script's directives
/// overriding them ([`LockGuard::for_script`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockGuard {
    /// Longest wait of each statement for a lock; zero turns the guard off (the server's
    /// own setting applies, usually no limit).
    pub lock_timeout: Duration,
    /// How long a lock-timed-out migration keeps retrying before its tenant fails.
    pub retry_for: Duration,
    /// Longest run of each statement; `None` for no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for LockGuard {
    /// 500 ms, retried for 10 minutes, no statement limit.
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_millis(500),
            retry_for: Duration::from_secs(600),
            statement_timeout: None,
        }
    }
}

impl LockGuard {
    /// The guard of `script`: its `-- avocet:ddl-lock-timeout` and
    /// `-- avocet:statement-timeout` directives over the fleet's settings.
    pub fn for_script(&self, script: &Script) -> Self {
        Self {
            lock_timeout: script.ddl_lock_timeout.unwrap_or(self.lock_timeout),
            statement_timeout: script.statement_timeout.or(self.statement_timeout),
            ..*self
        }
    }

    /// The lock timeout in force, `None` when the guard is off.
    pub fn lock_timeout(&self) -> Option<Duration> {
        (!self.lock_timeout.is_zero()).then_some(self.lock_timeout)
    }

    /// The wait before retry `attempt` (1 for the first retry): 1 s doubling to 30 s, each
    /// drawn from its upper three quarters (`jitter` in 0..1), so tenants that timed out
    /// together do not come back together.
    pub fn backoff(attempt: u32, jitter: f64) -> Duration {
        let base =
            Duration::from_secs(1 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30));
        base.mul_f64(0.25 + 0.75 * jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_thirty_with_jitter_below() {
        let top: Vec<u64> = (1..=8)
            .map(|a| LockGuard::backoff(a, 1.0).as_secs())
            .collect();
        assert_eq!(top, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(LockGuard::backoff(1, 0.0), Duration::from_millis(250));
    }

    #[test]
    fn a_script_s_directives_override_the_fleet() {
        let fleet = LockGuard::default();
        let script = Script {
            ddl_lock_timeout: Some(Duration::ZERO),
            statement_timeout: Some(Duration::from_secs(60)),
            ..Script::default()
        };
        let guard = fleet.for_script(&script);
        assert_eq!(guard.lock_timeout(), None);
        assert_eq!(guard.statement_timeout, Some(Duration::from_secs(60)));
        assert_eq!(fleet.for_script(&Script::default()), fleet);
    }
}
