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
    /// a reader never sees a later number before an earlier one. The batch moves each
    /// rollout's row once (its numbers, counters and migrations run together), and its
    /// events go in multi-row `INSERT`s: a tenant costs the store its work item, its state
    /// and its census row, not a dozen statements.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses it; nothing of the batch is kept then,
    /// so the caller may write it again.
    pub(crate) async fn write(&self, batch: &[Write]) -> Result<Vec<(String, u64)>, StoreError> {
        let _turn = self.write_turn().await;
        let q = StoreError::query;
        let mut tally = Tally::default();
        let mut census = Vec::new();
        let mut tx = self.pool.begin().await.map_err(q("writing events"))?;
        for write in batch {
            match write {
                Write::Event(e) => tally.event(e),
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
                    tally.ended(rollout_id, *state);
                    if let Some(e) = event {
                        tally.event(e);
                    }
                }
                Write::Known(k) => super::known::upsert(k, &mut tx).await?,
                Write::Census { fleet, row } => census.push((fleet, row)),
            }
        }
        // Rows of other transactions are taken in one order: census rows by (fleet,
        // tenant), as a fleet census stores them, and rollout rows by id, so two replicas'
        // batches never wait on each other in a cycle.
        census.sort_by(|a, b| (a.0, &a.1.tenant).cmp(&(b.0, &b.1.tenant)));
        for (fleet, row) in census {
            super::census::upsert(fleet, row, &mut tx).await?;
        }
        tally.0.sort_by(|a, b| a.0.cmp(b.0));
        let mut newest = Vec::new();
        for (id, delta) in &tally.0 {
            if let Some(seq) = delta.store(&mut tx, id).await? {
                newest.push(((*id).to_owned(), seq));
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

/// Stores `e` as its rollout's next event, as a batch of one does; returns its sequence
/// number.
///
/// # Errors
/// [`StoreError::Query`] when the store refuses it, or has no such rollout.
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &RolloutEvent,
) -> Result<u64, StoreError> {
    let mut tally = Tally::default();
    tally.event(e);
    let (id, delta) = &tally.0[0];
    // A delta with an event always numbers it (or fails for a missing rollout).
    delta.store(tx, id).await?.ok_or(StoreError::Query {
        context: "numbering an event",
        source: sqlx::Error::RowNotFound,
    })
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
        Ok(true)
    }
}

/// Most events in one `INSERT` (4 values each, under every server's limit).
const EVENTS_PER_INSERT: usize = 200;

/// What one batch changes in each rollout's row, in the order rollouts first appear.
#[derive(Default)]
struct Tally<'a>(Vec<(&'a str, Delta<'a>)>);

/// One rollout's share of a batch.
#[derive(Default)]
struct Delta<'a> {
    /// Its events, in batch order: they are numbered in this order.
    events: Vec<&'a RolloutEvent>,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    migrations_run: i64,
}

impl<'a> Tally<'a> {
    fn delta(&mut self, id: &'a str) -> &mut Delta<'a> {
        let at = match self.0.iter().position(|(r, _)| *r == id) {
            Some(at) => at,
            None => {
                self.0.push((id, Delta::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// `e`, numbered after the rollout's events before it in the batch.
    fn event(&mut self, e: &'a RolloutEvent) {
        let delta = self.delta(&e.rollout_id);
        if let EventKind::TenantFinished(t) = &e.kind {
            delta.migrations_run += i64::from(t.migrations_run);
        }
        delta.events.push(e);
    }

    /// A work item that ended in `state`, in the rollout's counters (succeeded, failed,
    /// skipped); an item back to pending counts nowhere.
    fn ended(&mut self, id: &'a str, state: WorkState) {
        let delta = self.delta(id);
        match state {
            WorkState::Succeeded => delta.succeeded += 1,
            WorkState::Failed => delta.failed += 1,
            WorkState::Skipped => delta.skipped += 1,
            WorkState::Pending | WorkState::Running => {}
        }
    }
}

impl Delta<'_> {
    /// Moves rollout `id`'s row by this delta and stores its events, numbered from the
    /// row's `last_seq`; returns the newest number when there were events.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses it, or has no such rollout for events.
    async fn store(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let q = StoreError::query;
        let count = self.events.len() as i64;
        let moved = sqlx::query_scalar::<_, i64>(
            "UPDATE rollouts SET last_seq = last_seq + $1, succeeded = succeeded + $2, \
             failed = failed + $3, skipped = skipped + $4, \
             migrations_run = migrations_run + $5 WHERE id = $6 RETURNING last_seq",
        )
        .bind(count)
        .bind(self.succeeded)
        .bind(self.failed)
        .bind(self.skipped)
        .bind(self.migrations_run)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(q("numbering events"))?;
        if self.events.is_empty() {
            return Ok(None);
        }
        let Some(last) = moved else {
            return Err(StoreError::Query {
                context: "numbering events",
                source: sqlx::Error::RowNotFound,
            });
        };
        let first = last - count + 1;
        for (chunk_at, chunk) in self.events.chunks(EVENTS_PER_INSERT).enumerate() {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = 4 * i;
                    format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO rollout_events (rollout_id, seq, at, body) VALUES {}",
                rows.join(", ")
            );
            // Not kept prepared: a chunk's length makes its text, and up to
            // EVENTS_PER_INSERT texts would churn through the connection's cache.
            let mut insert = sqlx::query(&sql).persistent(false);
            for (i, e) in chunk.iter().enumerate() {
                let body =
                    serde_json::to_string(&e.kind).map_err(StoreError::corrupt("an event"))?;
                let seq = first + (chunk_at * EVENTS_PER_INSERT + i) as i64;
                insert = insert.bind(id).bind(seq).bind(e.at_unix_ms).bind(body);
            }
            insert
                .execute(&mut **tx)
                .await
                .map_err(q("storing events"))?;
        }
        Ok(Some(last as u64))
    }
}
