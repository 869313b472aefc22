//! Replicas sharing rollouts. A replica claims work items a few at a time with a lease that
//! its heartbeat extends; an item whose lease ran out (its replica died) is claimable again.
//! Claims are single statements, so they are atomic on both stores; on PostgreSQL the
//! candidate row is taken `FOR UPDATE SKIP LOCKED`, so replicas claiming at once never wait
//! on each other nor take the same item (PostgreSQL docs, "The Locking Clause").
//!
//! Leases are fenced: each claim takes the item's next `lease_epoch`, and every later write
//! on the item must name its owner and that epoch (see [`Lease`]); a replica that stalled
//! past its lease and lost the item has its late writes refused. Lease times are the store's
//! own clock ([`Store::clock`]), never a replica's.

use super::{Store, StoreError, get};
use crate::model::{RolloutRecord, RolloutState, WorkState};

/// A work item this replica claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) position: u32,
    pub(crate) tenant: String,
    /// Attempts so far, this one included.
    pub(crate) attempts: u32,
    /// The lease this claim holds: every write on the item must carry it.
    pub(crate) lease: Lease,
}

/// Who holds a work item, and under which claim: the fence of every write on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// The replica that claimed it.
    pub(crate) owner: String,
    /// The claim's number: one more than the item's previous claim.
    pub(crate) epoch: i64,
}

/// One wave's work items by state, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WaveCounts {
    /// Not started, or released by a replica that stopped.
    pub(crate) pending: u32,
    /// Claimed, lease still running.
    pub(crate) running: u32,
    /// Claimed, lease run out: its replica is gone; claimable again.
    pub(crate) expired: u32,
    /// Finished with a failure.
    pub(crate) failed: u32,
    /// Tenants of the whole rollout finished with a failure.
    pub(crate) rollout_failed: u32,
}

impl WaveCounts {
    /// True when no item of the wave is waiting or running.
    pub(crate) fn done(&self) -> bool {
        self.pending == 0 && self.running == 0 && self.expired == 0
    }
}

impl Store {
    /// Says replica `id` is alive now (creating its row on first call) and extends the
    /// leases of the items it runs to `lease_ms` from now, both on the store's clock.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the writes.
    pub(crate) async fn heartbeat(&self, id: &str, lease_ms: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let q = StoreError::query("a replica's heartbeat");
        let clock = self.clock();
        sqlx::query(&format!(
            "INSERT INTO replicas (id, started_at, seen_at) VALUES ($1, {clock}, {clock}) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at"
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        // Rows the writer holds (a tenant being finished) are skipped, never waited on:
        // waiting could deadlock with the writer's transaction, and they are renewed on
        // the next beat if still running.
        let skip_locked = if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        sqlx::query(&format!(
            "UPDATE rollout_tenants SET lease_until = {clock} + $1 WHERE (rollout_id, position) IN \
             (SELECT rollout_id, position FROM rollout_tenants WHERE lease_owner = $2 \
             AND state = 'running'{skip_locked})"
        ))
        .bind(lease_ms)
        .bind(id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::query("a replica's heartbeat"))
    }

    /// Forgets replica `id` (it stops cleanly).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn remove_replica(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("removing a replica"))
    }

    /// True when a replica other than `id` was seen within the last `lease_ms` (the
    /// store's clock).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn others_alive(&self, id: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM replicas WHERE id <> $1 AND seen_at >= {} - $2",
            self.clock()
        ))
        .bind(id)
        .bind(lease_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("finding other replicas"))?;
        Ok(n > 0)
    }

    /// Items replica `id` held in an earlier life (the same id restarted) go back to
    /// pending: nobody runs them now. Returns how many.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn release_leases(&self, id: &str) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE rollout_tenants SET state = 'pending', lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(StoreError::query("releasing leases"))
    }

    /// Claims up to `limit` claimable items of wave `wave` of rollout `rollout_id`, first
    /// positions first, for replica `owner` for `lease_ms` (the store's clock), each under
    /// its next lease epoch: pending, or running with a lease that ran out. Empty when there is none, the rollout is not `running` (paused,
    /// cancelled, being ended), or more than `max_failed` of its tenants failed, on any
    /// replica.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the claim.
    pub(crate) async fn claim(
        &self,
        rollout_id: &str,
        wave: u32,
        owner: &str,
        lease_ms: i64,
        limit: u32,
        max_failed: Option<u32>,
    ) -> Result<Vec<Claim>, StoreError> {
        let _turn = self.write_turn().await;
        const CTX: &str = "claiming tenants";
        let skip_locked = if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let clock = self.clock();
        let sql = format!(
            "UPDATE rollout_tenants SET state = 'running', lease_owner = $1, \
             lease_until = {clock} + $2, lease_epoch = lease_epoch + 1, \
             attempts = attempts + 1, updated_at = {clock} WHERE rollout_id = $3 AND position IN (\
             SELECT position FROM rollout_tenants WHERE rollout_id = $4 AND wave = $5 \
             AND (state = 'pending' OR (state = 'running' AND lease_until < {clock})) \
             AND EXISTS (SELECT 1 FROM rollouts WHERE id = $6 AND state = 'running' \
             AND finished_by IS NULL AND failed <= $7) \
             ORDER BY position LIMIT $8{skip_locked}) \
             RETURNING position, tenant, attempts, lease_epoch"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_ms)
            .bind(rollout_id)
            .bind(rollout_id)
            .bind(i64::from(wave))
            .bind(rollout_id)
            .bind(max_failed.map_or(i64::MAX, i64::from))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        let mut claims = rows
            .iter()
            .map(|row| {
                Ok(Claim {
                    position: get::<i64>(row, 0, CTX)? as u32,
                    tenant: get(row, 1, CTX)?,
                    attempts: get::<i64>(row, 2, CTX)? as u32,
                    lease: Lease {
                        owner: owner.to_owned(),
                        epoch: get(row, 3, CTX)?,
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claims.sort_by_key(|c| c.position);
        Ok(claims)
    }

    /// Gives back items of rollout `rollout_id` that replica `owner` claimed and did not
    /// start: pending again, for any replica.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn release_claims(
        &self,
        rollout_id: &str,
        owner: &str,
        positions: &[u32],
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        for position in positions {
            sqlx::query(
                "UPDATE rollout_tenants SET state = 'pending', lease_owner = NULL, \
                 lease_until = NULL WHERE rollout_id = $1 AND position = $2 \
                 AND lease_owner = $3 AND state = 'running'",
            )
            .bind(rollout_id)
            .bind(i64::from(*position))
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("releasing claims"))?;
        }
        Ok(())
    }

    /// Wave `wave` of rollout `rollout_id`, counted by state now.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn wave_counts(
        &self,
        rollout_id: &str,
        wave: u32,
    ) -> Result<WaveCounts, StoreError> {
        const CTX: &str = "counting a wave";
        let rows = sqlx::query(&format!(
            "SELECT state, expired, COUNT(*) FROM (SELECT state, CASE WHEN state = 'running' \
             AND lease_until < {} THEN 1 ELSE 0 END AS expired FROM rollout_tenants \
             WHERE rollout_id = $1 AND wave = $2) w GROUP BY state, expired",
            self.clock()
        ))
        .bind(rollout_id)
        .bind(i64::from(wave))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        let mut counts = WaveCounts::default();
        for row in &rows {
            let state: String = get(row, 0, CTX)?;
            let expired = get::<i32>(row, 1, CTX)? == 1;
            let n = get::<i64>(row, 2, CTX)? as u32;
            match WorkState::parse(&state) {
                WorkState::Pending => counts.pending += n,
                WorkState::Running if expired => counts.expired += n,
                WorkState::Running => counts.running += n,
                WorkState::Failed => counts.failed += n,
                WorkState::Succeeded | WorkState::Skipped => {}
            }
        }
        let failed: Option<i64> = sqlx::query_scalar("SELECT failed FROM rollouts WHERE id = $1")
            .bind(rollout_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        counts.rollout_failed = failed.unwrap_or(0) as u32;
        Ok(counts)
    }

    /// Marks wave `wave` of rollout `rollout_id` started; true for the one caller that
    /// marked it first in this run of the rollout (it emits the `WaveStarted`).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn mark_wave(&self, rollout_id: &str, wave: u32) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE rollouts SET wave_mark = $1 WHERE id = $2 AND wave_mark < $3")
            .bind(i64::from(wave))
            .bind(rollout_id)
            .bind(i64::from(wave))
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(StoreError::query("marking a wave started"))
    }

    /// True when wave `wave` of rollout `rollout_id` was started in this run (by any
    /// replica).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn wave_marked(
        &self,
        rollout_id: &str,
        wave: u32,
    ) -> Result<bool, StoreError> {
        let mark: Option<i64> = sqlx::query_scalar("SELECT wave_mark FROM rollouts WHERE id = $1")
            .bind(rollout_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a wave mark"))?;
        Ok(mark.is_some_and(|m| m >= i64::from(wave)))
    }

    /// Gives back the end of rollout `rollout_id` that replica `owner` took (it stops
    /// first): another replica may end it.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn unclaim_finish(
        &self,
        rollout_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE rollouts SET finished_by = NULL WHERE id = $1 AND finished_by = $2")
            .bind(rollout_id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("giving back the end of a rollout"))
    }

    /// Makes replica `owner` the one that ends this run of rollout `rollout_id`; true for
    /// the first caller only, or when the replica that took it was not seen within the
    /// last `lease_ms` (it died ending it). Once taken, no tenant of the rollout is claimed.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn claim_finish(
        &self,
        rollout_id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(&format!(
            "UPDATE rollouts SET finished_by = $1 WHERE id = $2 AND (finished_by IS NULL OR \
             NOT EXISTS (SELECT 1 FROM replicas WHERE id = rollouts.finished_by \
             AND seen_at >= {} - $3))",
            self.clock()
        ))
        .bind(owner)
        .bind(rollout_id)
        .bind(lease_ms)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(StoreError::query("ending a rollout"))
    }

    /// Rollouts `running` that a replica which does not run them may join: not being ended,
    /// with an item some replica could claim now (pending, or a lease that ran out); or with
    /// no live lease on any item and nobody alive ending them (the replica that ran the last
    /// tenants, or took the ending, died before `RolloutFinished`: the joiner ends them).
    /// A replica counts as alive when it was seen within the last `lease_ms` (the store's
    /// clock).
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`] when they cannot be read.
    pub(crate) async fn joinable(&self, lease_ms: i64) -> Result<Vec<RolloutRecord>, StoreError> {
        let clock = self.clock();
        let sql = format!(
            "SELECT {} FROM rollouts r WHERE r.state = 'running' AND ((r.finished_by IS NULL \
             AND EXISTS (SELECT 1 FROM rollout_tenants t WHERE t.rollout_id = r.id AND \
             (t.state = 'pending' OR (t.state = 'running' AND t.lease_until < {clock})))) \
             OR (NOT EXISTS (SELECT 1 FROM rollout_tenants t WHERE t.rollout_id = r.id AND \
             t.state = 'running' AND t.lease_until >= {clock}) AND (r.finished_by IS NULL OR \
             NOT EXISTS (SELECT 1 FROM replicas p WHERE p.id = r.finished_by \
             AND p.seen_at >= {clock} - $1))))",
            super::rollouts::COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(lease_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("finding rollouts to join"))?;
        rows.iter().map(super::rollouts::record).collect()
    }

    /// True when a replica other than `me` holds a live lease on a tenant of rollout `id`:
    /// it runs the rollout now.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn others_leasing(&self, id: &str, me: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM rollout_tenants WHERE rollout_id = $1 AND state = 'running' \
             AND lease_owner <> $2 AND lease_until >= {}",
            self.clock()
        ))
        .bind(id)
        .bind(me)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("finding other replicas of a rollout"))?;
        Ok(n > 0)
    }

    /// Tenants of rollout `id` running on some replica now (a lease that ran out does not
    /// count).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn running_count(&self, id: &str) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM rollout_tenants WHERE rollout_id = $1 AND state = 'running' \
             AND lease_until >= {}",
            self.clock()
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("counting running tenants"))?;
        Ok(n as u32)
    }

    /// The state of rollout `id`, if it exists.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`] when it cannot be read.
    pub(crate) async fn rollout_state(&self, id: &str) -> Result<Option<RolloutState>, StoreError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a rollout's state"))?;
        state
            .map(|s| {
                s.parse().map_err(|message| StoreError::Corrupt {
                    context: "a rollout's state",
                    message,
                })
            })
            .transpose()
    }
}
