//! A rollout's whole event stream, read to the end, and what the command line asks of a
//! running rollout.

use crate::{ClientError, Events, pb};

/// What [`Client::control`] asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// No further tenant starts; tenants in flight stop between migrations.
    Cancel,
    /// No further tenant starts until resumed.
    Pause,
    /// Continue a paused or interrupted rollout.
    Resume,
}

/// Every event of a finished rollout stream.
#[derive(Debug, Clone, Default)]
pub struct RolloutRecord {
    /// All events in order.
    pub events: Vec<pb::RolloutEvent>,
}

impl RolloutRecord {
    /// Reads `events` to the end.
    ///
    /// # Errors
    /// [`ClientError::Status`] when the stream breaks.
    pub async fn collect(mut events: Events) -> Result<Self, ClientError> {
        let mut all = Vec::new();
        while let Some(event) = events.message().await? {
            all.push(event);
        }
        Ok(Self { events: all })
    }

    /// The rollout's id (every event carries it).
    pub fn id(&self) -> Option<&str> {
        self.events.first().map(|e| e.rollout_id.as_str())
    }

    /// The rollout's summary, if the stream reached the end.
    pub fn finished(&self) -> Option<&pb::RolloutFinished> {
        self.events.iter().rev().find_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::RolloutFinished(f)) => Some(f),
            _ => None,
        })
    }

    /// Every `TenantFinished` event.
    pub fn tenants(&self) -> impl Iterator<Item = &pb::TenantFinished> {
        self.events.iter().filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::TenantFinished(t)) => Some(t),
            _ => None,
        })
    }

    /// The `TenantFinished` event of `tenant`.
    pub fn tenant(&self, tenant: &str) -> Option<&pb::TenantFinished> {
        self.tenants().find(|t| t.tenant == tenant)
    }

    /// Every `MigrationFinished` event.
    pub fn migrations(&self) -> impl Iterator<Item = &pb::MigrationFinished> {
        self.events.iter().filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::MigrationFinished(m)) => Some(m),
            _ => None,
        })
    }
}

/// A sort key that orders version texts as the daemon orders versions: numbered versions part
/// by part (`1 < 1.2 < 1.10 < 2`, Flyway's `MigrationVersion` order), then repeatables
/// (`R__<description>`) by description as Flyway reads it (underscores as spaces), then as
/// written.
pub(crate) fn version_order(text: &str) -> (bool, Vec<i64>, String, String) {
    let parts = text.split('.').map(|p| p.parse().unwrap_or(i64::MAX));
    match text.starts_with("R__") {
        true => (true, Vec::new(), text.replace('_', " "), text.to_owned()),
        false => (false, parts.collect(), String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_texts_order_as_versions() {
        let mut texts = ["R__views", "2", "R__a_b", "1.10", "R__aB", "1.2", "1"];
        texts.sort_by_cached_key(|t| super::version_order(t));
        assert_eq!(
            texts,
            ["1", "1.2", "1.10", "2", "R__a_b", "R__aB", "R__views"]
        );
    }
}
