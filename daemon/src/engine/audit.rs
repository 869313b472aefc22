//! What a rollout's request leaves in the control store, and for how long (issue 25,
//! finding 12): a bounded summary of the selector, never the request's unbounded input,
//! and a purge of finished rollouts and their audit past `rollout_retention`, then of the
//! untagged published sets past `set_retention` that nothing uses.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Engine, Selector};
use crate::model::{SetDigest, bounded};

/// Tenant ids a summary quotes; the rest are counted and digested.
pub(super) const QUOTED_IDS: usize = 8;

/// How often finished rollouts are looked at for retention, after the look at start.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The request's selector as stored with its rollout (`rollouts.request`) and its audit
/// entry (`audit.detail`): how many tenant ids it named, their SHA-256 (over the ids in
/// the request's order, each followed by `\n`), the first [`QUOTED_IDS`] of them; the
/// label selector's length, SHA-256 and first 128 bytes. Each id is at most 128 bytes
/// (`model::check_id`), so the summary is under 2 KiB whatever the request held.
pub(super) fn request_summary(
    selector: &Selector,
    digest: &Option<SetDigest>,
) -> serde_json::Value {
    let mut ids = Sha256::new();
    for id in &selector.ids {
        ids.update(id.as_bytes());
        ids.update(b"\n");
    }
    let labels = selector.labels.to_string();
    serde_json::json!({
        "tenant_ids": {
            "count": selector.ids.len(),
            "sha256": hex::encode(ids.finalize()),
            "first": selector.ids.iter().take(QUOTED_IDS).map(|id| bounded(id)).collect::<Vec<_>>(),
        },
        "labels": {
            "bytes": labels.len(),
            "sha256": hex::encode(Sha256::digest(labels.as_bytes())),
            "first": bounded(&labels),
        },
        "expected_set_digest": digest,
    })
}

impl Engine {
    /// Until `stop`: deletes the rollouts that finished more than `retention` ago, with
    /// their work items, events and audit entries (and audit entries that old whose
    /// rollout is gone), now and every hour. A store that fails is logged and tried again
    /// at the next hour; rollouts that have not finished are never deleted. Then, each
    /// time, the untagged published sets past `set_retention` that no rollout in the store
    /// pinned and no fleet follows ([`Engine::collect_sets`]).
    pub async fn keep_retention(&self, retention: Duration, stop: CancellationToken) {
        loop {
            let cutoff = crate::store::now_ms()
                .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            match self.runner.store().purge_finished_before(cutoff).await {
                Ok(p) if p.rollouts > 0 || p.audit > 0 => tracing::info!(
                    rollouts = p.rollouts,
                    audit = p.audit,
                    retention_s = retention.as_secs(),
                    "deleted rollouts past their retention"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rollout retention: will try again"),
            }
            if let Err(e) = self.collect_sets().await {
                tracing::warn!(error = %e, "set retention: will try again");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PURGE_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LabelSelector;

    /// Finding 12: 100,000 ids and a 1 MB label selector make a summary of under 2 KiB
    /// that still tells two id lists apart.
    #[test]
    fn a_huge_selector_is_summarised_in_bounded_bytes() {
        let values: Vec<String> = (0..100_000).map(|i| format!("v{i:06}")).collect();
        let labels = LabelSelector::parse(&format!("region notin ({})", values.join(",")))
            .expect("a valid selector");
        let selector = |first: &str| Selector {
            ids: std::iter::once(first.to_owned())
                .chain((0..100_000).map(|i| format!("t{i:06}")))
                .collect(),
            labels: labels.clone(),
        };
        let summary = request_summary(&selector("a"), &None).to_string();
        assert!(summary.len() < 2048, "{} bytes", summary.len());
        assert!(summary.contains("\"count\":100001"), "{summary}");
        let other = request_summary(&selector("b"), &None).to_string();
        assert_ne!(summary, other);
    }
}
