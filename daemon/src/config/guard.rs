//! The lock guard's settings (DESIGN.md rule 7): how long a migration's statement may wait
//! for a lock before it gives up and retries outside the lock queue, for how long it keeps
//! retrying, and how many tenants of one server may be retrying at once.

use std::time::Duration;

/// Default `ddl_lock_timeout`: 500 ms, pgroll's default `lock_timeout`.
pub(super) fn default_ddl_lock_timeout() -> Duration {
    Duration::from_millis(500)
}

/// Default `ddl_retry_for`: 10 minutes.
pub(super) fn default_ddl_retry_for() -> Duration {
    Duration::from_secs(600)
}

/// Default `max_lock_waiters_per_host`: 2.
pub(super) fn default_max_lock_waiters_per_host() -> usize {
    2
}

/// Humantime for an optional duration (`statement_timeout`): absent is `None`.
pub(super) mod optional {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `Some(d)` as humantime, `None` as nothing.
    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    /// Reads a humantime duration (`"30min"`).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
