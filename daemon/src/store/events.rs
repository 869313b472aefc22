//! Rollout events and the writes that go with them, in batches: one transaction stores a
//! batch's events, the work items and counters they change, and the tenants' last-known
//! state, so what a watcher reads and what `Get` says never disagree.

use super::{CensusRow, KnownState, Lease, Store, StoreError, get, now_ms};
use crate::model::{EventKind, RolloutEvent, WorkState, WorkStep};

/// One write of a batch.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// An event; the store gives it the rollout's next sequence number (its `seq` is
    /// ignored). A rollout's state never changes through one: see
    /// [`Store::change_state`].
    Event(RolloutEvent),
    /// A work item's end, with its `TenantFinished` event: fenced by `lease` (the claim
    /// that ran it; `None` for an item skipped before anyone ran it). A write whose lease
    /// was lost (the item was claimed again since) is refused whole, event included, and
    /// logged; the rollout's counters move only with a write that applied.
    Work {
        rollout_id: String,
        position: u32,
        lease: Option<Lease>,
        state: WorkState,
        error: Option<String>,
        event: Option<RolloutEvent>,
    },
    /// A tenant's last-known state.
    Known(KnownState),
    /// A tenant's schema read right after its run (`census_on_apply`), kept as its last
    /// census in `fleet`.
    Census {
        /// The tenant's fleet.
        fleet: String,
        /// What was read.
        row: CensusRow,
    },
}

impl Store {
    /// Stores `batch` in one transaction, in order, each event numbered next in its
    /// rollout; returns each rollout's newest sequence number stored.
    ///
    /// Numbers are taken under the rollout row's lock (`UPDATE … RETURNING`), held until
    /// commit, so replicas writing one rollout's events at once commit them in number order:
    /// a reader never sees a later number before an earlier one.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses it; nothing of the batch is kept then,
    /// so the caller may write it again.
    pub(crate) async fn write(&self, batch: &[Write]) -> Result<Vec<(String, u64)>, StoreError> {
        let q = StoreError::query;
        let mut newest: Vec<(String, u64)> = Vec::new();
        let mut tx = self.pool.begin().await.map_err(q("writing events"))?;
        for write in batch {
            match write {
                Write::Event(e) => {
                    let seq = insert_event(&mut tx, e).await?;
                    match newest.iter_mut().find(|(id, _)| *id == e.rollout_id) {
                        Some(slot) => slot.1 = seq,
                        None => newest.push((e.rollout_id.clone(), seq)),
                    }
                }
                Write::Work {
                    rollout_id,
                    position,
                    lease,
                    state,
                    error,
                    event,
                } => {
                    if !self
                        .end_work(
                            &mut tx,
                            rollout_id,
                            *position,
                            lease.as_ref(),
                            *state,
                            error,
                        )
                        .await?
                    {
                        continue;
                    }
                    if let Some(e) = event {
                        let seq = insert_event(&mut tx, e).await?;
                        match newest.iter_mut().find(|(id, _)| *id == e.rollout_id) {
                            Some(slot) => slot.1 = seq,
                            None => newest.push((e.rollout_id.clone(), seq)),
                        }
                    }
                }
                Write::Known(k) => super::known::upsert(k, &mut tx).await?,
                Write::Census { fleet, row } => super::census::upsert(fleet, row, &mut tx).await?,
            }
        }
        tx.commit().await.map_err(q("writing events"))?;
        Ok(newest)
    }

    /// Up to `limit` events of rollout `id` with `seq > after`, in order.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`] when they cannot be read.
    pub(crate) async fn events_after(
        &self,
        id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RolloutEvent>, StoreError> {
        const CTX: &str = "reading events";
        let rows = sqlx::query(
            "SELECT seq, at, body FROM rollout_events WHERE rollout_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        rows.iter()
            .map(|row| {
                let body: String = get(row, 2, CTX)?;
                Ok(RolloutEvent {
                    rollout_id: id.to_owned(),
                    seq: get::<i64>(row, 0, CTX)? as u64,
                    at_unix_ms: get(row, 1, CTX)?,
                    kind: serde_json::from_str(&body).map_err(StoreError::corrupt(CTX))?,
                })
            })
            .collect()
    }
}

/// Stores `e` as its rollout's next event; returns its sequence number.
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &RolloutEvent,
) -> Result<u64, StoreError> {
    let q = StoreError::query;
    let body = serde_json::to_string(&e.kind).map_err(StoreError::corrupt("an event"))?;
    let seq: i64 = sqlx::query_scalar(
        "UPDATE rollouts SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(e.rollout_id.clone())
    .fetch_one(&mut **tx)
    .await
    .map_err(q("numbering an event"))?;
    sqlx::query("INSERT INTO rollout_events (rollout_id, seq, at, body) VALUES ($1, $2, $3, $4)")
        .bind(e.rollout_id.clone())
        .bind(seq)
        .bind(e.at_unix_ms)
        .bind(body)
        .execute(&mut **tx)
        .await
        .map_err(q("storing an event"))?;
    if let EventKind::TenantFinished(t) = &e.kind {
        sqlx::query("UPDATE rollouts SET migrations_run = migrations_run + $1 WHERE id = $2")
            .bind(i64::from(t.migrations_run))
            .bind(e.rollout_id.clone())
            .execute(&mut **tx)
            .await
            .map_err(q("counting a tenant"))?;
    }
    Ok(seq as u64)
}

impl Store {
    /// Ends work item `position` of rollout `rollout_id` in `state`, fenced by `lease`
    /// (`None`: a skip of an item nobody runs: pending, or running on a lease that ran
    /// out), and moves the rollout's counter in the same transaction. False when the
    /// write was refused: the lease was lost, or the table has no such step.
    async fn end_work(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rollout_id: &str,
        position: u32,
        lease: Option<&Lease>,
        state: WorkState,
        error: &Option<String>,
    ) -> Result<bool, StoreError> {
        let q = StoreError::query("ending a rollout's tenant");
        let step = match lease {
            Some(_) => WorkStep::Finish(state),
            None => WorkStep::Skip,
        };
        if WorkState::Running.after(step) != Some(state) {
            tracing::error!(
                rollout_id,
                position,
                ?step,
                "a work item's step the table refuses"
            );
            return Ok(false);
        }
        let set = "UPDATE rollout_tenants SET state = $1, last_error = COALESCE($2, last_error), \
                   updated_at = $3 WHERE rollout_id = $4 AND position = $5";
        let sql = match lease {
            Some(_) => format!(
                "{set} AND state = 'running' AND lease_owner = $6 AND lease_epoch = $7 \
                 RETURNING lease_epoch"
            ),
            None => format!(
                "{set} AND (state = 'pending' OR (state = 'running' AND lease_until < {})) \
                 RETURNING lease_epoch",
                self.clock()
            ),
        };
        let query = match lease {
            Some(l) => sqlx::query_scalar::<_, i64>(&sql)
                .bind(state.as_str())
                .bind(error.clone())
                .bind(now_ms())
                .bind(rollout_id)
                .bind(i64::from(position))
                .bind(l.owner.clone())
                .bind(l.epoch),
            None => sqlx::query_scalar::<_, i64>(&sql)
                .bind(state.as_str())
                .bind(error.clone())
                .bind(now_ms())
                .bind(rollout_id)
                .bind(i64::from(position)),
        };
        let applied = query.fetch_optional(&mut **tx).await.map_err(q)?.is_some();
        if !applied {
            match lease {
                Some(l) => tracing::warn!(
                    rollout_id,
                    position,
                    owner = %l.owner,
                    epoch = l.epoch,
                    "lost lease: the tenant was claimed again since; this replica's result \
                     for it is not recorded (its tenant lock kept the database safe)"
                ),
                None => tracing::debug!(rollout_id, position, "skip of a tenant already ended"),
            }
            return Ok(false);
        }
        count(tx, rollout_id, state).await?;
        Ok(true)
    }
}

/// Counts one work item that ended in `state` in the rollout's counters (succeeded,
/// failed, skipped); an item back to pending counts nowhere.
async fn count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    state: WorkState,
) -> Result<(), StoreError> {
    let column = match state {
        WorkState::Succeeded => "succeeded",
        WorkState::Failed => "failed",
        WorkState::Skipped => "skipped",
        WorkState::Pending | WorkState::Running => return Ok(()),
    };
    sqlx::query(&format!(
        "UPDATE rollouts SET {column} = {column} + 1 WHERE id = $1"
    ))
    .bind(id)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(StoreError::query("counting a rollout's tenants"))
}
