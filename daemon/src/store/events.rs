//! Rollout events and the writes that go with them, in batches: one transaction stores a
//! batch's events, the work items and counters they change, and the tenants' last-known
//! state, so what a watcher reads and what `Get` says never disagree.

use super::{KnownState, Store, StoreError, get, now_ms};
use crate::model::{EventKind, RolloutEvent, RolloutState, WorkState};

/// One write of a batch.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// An event; the store gives it the rollout's next sequence number (its `seq` is
    /// ignored). A `TenantFinished` also counts its tenant, a `RolloutFinished` and a
    /// `StateChanged` also set the rollout's state.
    Event(RolloutEvent),
    /// A work item's new state (`Running` also counts an attempt).
    Work {
        rollout_id: String,
        position: u32,
        state: WorkState,
        error: Option<String>,
    },
    /// A tenant's last-known state.
    Known(KnownState),
    /// A rollout's state, outside any event (a resume setting it running again).
    State {
        rollout_id: String,
        state: RolloutState,
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
                    state,
                    error,
                } => {
                    let attempt = i64::from(*state == WorkState::Running);
                    let old: Option<String> = sqlx::query_scalar(
                        "SELECT state FROM rollout_tenants WHERE rollout_id = $1 AND position = $2",
                    )
                    .bind(rollout_id.clone())
                    .bind(*position as i64)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q("reading a rollout's tenant"))?;
                    let old = old.map(|s| WorkState::parse(&s));
                    count(&mut tx, rollout_id, old, *state).await?;
                    sqlx::query(
                        "UPDATE rollout_tenants SET state = $1, last_error = COALESCE($2, \
                         last_error), attempts = attempts + $3, updated_at = $4 \
                         WHERE rollout_id = $5 AND position = $6",
                    )
                    .bind(state.as_str())
                    .bind(error.clone())
                    .bind(attempt)
                    .bind(now_ms())
                    .bind(rollout_id.clone())
                    .bind(*position as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("updating a rollout's tenant"))?;
                }
                Write::Known(k) => super::known::upsert(k, &mut tx).await?,
                Write::State { rollout_id, state } => {
                    set_state(&mut tx, rollout_id, *state).await?;
                }
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
async fn insert_event(
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
    match &e.kind {
        EventKind::TenantFinished(t) => {
            sqlx::query("UPDATE rollouts SET migrations_run = migrations_run + $1 WHERE id = $2")
                .bind(i64::from(t.migrations_run))
                .bind(e.rollout_id.clone())
                .execute(&mut **tx)
                .await
                .map_err(q("counting a tenant"))?;
        }
        EventKind::RolloutFinished(s) => set_state(tx, &e.rollout_id, s.state).await?,
        EventKind::StateChanged { state, .. } => set_state(tx, &e.rollout_id, *state).await?,
        _ => {}
    }
    Ok(seq as u64)
}

async fn set_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    state: RolloutState,
) -> Result<(), StoreError> {
    let finished = state.is_final().then(now_ms);
    sqlx::query(
        "UPDATE rollouts SET state = $1, finished_at = COALESCE($2, finished_at) WHERE id = $3",
    )
    .bind(state.as_str())
    .bind(finished)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(StoreError::query("setting a rollout's state"))
}

/// Moves one work item between the rollout's counters (succeeded, failed, skipped).
async fn count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    old: Option<WorkState>,
    new: WorkState,
) -> Result<(), StoreError> {
    let column = |s: Option<WorkState>| match s {
        Some(WorkState::Succeeded) => Some("succeeded"),
        Some(WorkState::Failed) => Some("failed"),
        Some(WorkState::Skipped) => Some("skipped"),
        _ => None,
    };
    let (from, to) = (column(old), column(Some(new)));
    if from == to {
        return Ok(());
    }
    for (col, delta) in [(from, -1), (to, 1)] {
        if let Some(col) = col {
            sqlx::query(&format!(
                "UPDATE rollouts SET {col} = {col} + $1 WHERE id = $2"
            ))
            .bind(delta as i64)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("counting a rollout's tenants"))?;
        }
    }
    Ok(())
}
