//! Retention (issue 25, finding 12): rollouts that finished before a cutoff are deleted
//! with their work items, events and audit entries, and so are audit entries older than
//! the cutoff whose rollout is gone. A rollout that has not finished (pending, running,
//! paused, interrupted) is kept however old, as is everything a kept rollout owns.
//!
//! Published sets (issue 30) that no tag names, stored before a cutoff, are deleted with
//! their files unless a rollout still in the store pinned them or the caller keeps them.

use super::{Store, StoreError, get};
use crate::model::RolloutState;

/// Rollouts deleted per transaction, so one purge never holds the store for long.
const PURGE_CHUNK: i64 = 200;

/// What one [`Store::purge_finished_before`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Purged {
    /// Rollouts (with their work items and events).
    pub(crate) rollouts: u64,
    /// Audit entries: those of the deleted rollouts and orphans older than the cutoff.
    pub(crate) audit: u64,
}

impl Store {
    /// Deletes every rollout in a final state (succeeded, failed, cancelled) whose
    /// `finished_at` is before `cutoff_ms` (ms since the epoch), with its work items,
    /// events and audit entries, [`PURGE_CHUNK`] rollouts per transaction; then the audit
    /// entries older than `cutoff_ms` whose rollout no longer exists.
    ///
    /// # Errors
    /// [`StoreError::Query`] when a statement fails; what the chunks before it deleted
    /// stays deleted.
    pub(crate) async fn purge_finished_before(&self, cutoff_ms: i64) -> Result<Purged, StoreError> {
        const CTX: &str = "purging old rollouts";
        let finals: Vec<&str> = [
            RolloutState::Succeeded,
            RolloutState::Failed,
            RolloutState::Cancelled,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        let mut purged = Purged::default();
        loop {
            let rows = sqlx::query(
                "SELECT id FROM rollouts WHERE finished_at IS NOT NULL AND finished_at < $1 \
                 AND state IN ($2, $3, $4) ORDER BY finished_at LIMIT $5",
            )
            .bind(cutoff_ms)
            .bind(finals[0])
            .bind(finals[1])
            .bind(finals[2])
            .bind(PURGE_CHUNK)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
            let ids = rows
                .iter()
                .map(|row| get::<String>(row, 0, CTX))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.is_empty() {
                break;
            }
            let list = (1..=ids.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
            // Children first, the rollouts last: a failure part way leaves no orphan row
            // pointing at a deleted rollout (the transaction rolls back anyway).
            for table in ["rollout_events", "rollout_tenants", "audit", "rollouts"] {
                let column = if table == "rollouts" {
                    "id"
                } else {
                    "rollout_id"
                };
                let sql = format!("DELETE FROM {table} WHERE {column} IN ({list})");
                let mut q = sqlx::query(&sql);
                for id in &ids {
                    q = q.bind(id.clone());
                }
                let done = q.execute(&mut *tx).await.map_err(StoreError::query(CTX))?;
                match table {
                    "audit" => purged.audit += done.rows_affected(),
                    "rollouts" => purged.rollouts += done.rows_affected(),
                    _ => {}
                }
            }
            tx.commit().await.map_err(StoreError::query(CTX))?;
            if (ids.len() as i64) < PURGE_CHUNK {
                break;
            }
        }
        let orphans = sqlx::query(
            "DELETE FROM audit WHERE at < $1 \
             AND NOT EXISTS (SELECT 1 FROM rollouts WHERE rollouts.id = audit.rollout_id)",
        )
        .bind(cutoff_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        purged.audit += orphans.rows_affected();
        Ok(purged)
    }
}

/// A published set [`Store::collect_sets`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Collected {
    /// Its digest.
    pub(crate) digest: String,
    /// Its files' total size, bytes.
    pub(crate) bytes: i64,
    /// When it was first published, ms since the epoch.
    pub(crate) published_at: i64,
}

impl Store {
    /// Deletes every published set first stored before `cutoff_ms` (ms since the epoch)
    /// that no tag names, that no rollout in the store pinned (whatever its state: a
    /// finished rollout's set goes once `rollout_retention` deleted the rollout; any
    /// rollout whose stored spec names the digest counts) and that `keep` does not list,
    /// with its files and an audit entry (`avocet.v1.Sets/DeleteSet`, caller `caller`),
    /// one transaction per set whose first statement deletes the set only if no tag and
    /// no rollout names it then.
    ///
    /// # Errors
    /// [`StoreError::Query`] when a statement fails; the sets deleted before it stay
    /// deleted.
    pub(crate) async fn collect_sets(
        &self,
        cutoff_ms: i64,
        keep: &[String],
        caller: &str,
    ) -> Result<Vec<Collected>, StoreError> {
        const CTX: &str = "collecting untagged published sets";
        let rows = sqlx::query(
            "SELECT digest, bytes, published_at FROM published_sets WHERE published_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM set_tags WHERE set_tags.set_digest = published_sets.digest) \
             ORDER BY published_at, digest",
        )
        .bind(cutoff_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        let mut collected = Vec::new();
        for r in &rows {
            let set = Collected {
                digest: get(r, 0, CTX)?,
                bytes: get(r, 1, CTX)?,
                published_at: get(r, 2, CTX)?,
            };
            if keep.contains(&set.digest) {
                continue;
            }
            // A write first: SQLite takes its write lock (waiting its busy timeout) rather
            // than failing to upgrade a read; the conditions are read under it.
            let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
            let deleted = sqlx::query(
                "DELETE FROM published_sets WHERE digest = $1 AND published_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM set_tags WHERE set_tags.set_digest = $3) \
                 AND NOT EXISTS (SELECT 1 FROM rollouts WHERE rollouts.spec LIKE $4)",
            )
            .bind(&set.digest)
            .bind(cutoff_ms)
            .bind(&set.digest)
            .bind(format!("%{}%", set.digest))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(CTX))?
            .rows_affected();
            if deleted == 0 {
                continue;
            }
            let detail = format!(
                "set {} collected: untagged, named by no rollout, {} bytes, published at {} ms, \
                 older than set_retention",
                set.digest, set.bytes, set.published_at
            );
            super::sets::end_deletion(tx, &set.digest, caller, &detail, CTX).await?;
            collected.push(set);
        }
        Ok(collected)
    }
}
