//! A rollout's state changes. Each is one compare-and-set along `model`'s table
//! ([`RolloutState::after`]): the stored state changes only from a state the step leaves,
//! in the same transaction as the event that tells it, and the caller learns whether it
//! applied. Two writers racing (a Cancel and a replica ending the rollout, a Pause and an
//! end) cannot both win: the second finds the state it expected gone and is refused.

use super::{Store, StoreError, now_ms};
use crate::model::{EventKind, Refused, RolloutEvent, RolloutState, RolloutStep};

/// What a state change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Changed {
    /// Applied: the rollout is now in this state; its event has this sequence number.
    To(RolloutState, u64),
    /// Refused by the table (or, for an ending step, the run was ended already).
    Refused(Refused),
}

impl Store {
    /// Applies `step` to rollout `id` where the table allows it from the stored state, and
    /// stores the event `event(new state)` with it, in one transaction. An ending step
    /// ([`RolloutStep::ends`]) applies once per run (it sets `finished_at`, which every
    /// other step clears). A [`RolloutStep::Reopen`] also starts a new run: waves again,
    /// nobody ending it, items left running pending (their history tables say what is left).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store fails (nothing changed then);
    /// [`StoreError::Corrupt`] when there is no such rollout or its state does not parse.
    pub(crate) async fn change_state(
        &self,
        id: &str,
        step: RolloutStep,
        event: impl FnOnce(RolloutState) -> EventKind,
    ) -> Result<Changed, StoreError> {
        const CTX: &str = "changing a rollout's state";
        let q = StoreError::query(CTX);
        let edges = RolloutState::edges(step);
        let mut tx = self.pool.begin().await.map_err(q)?;
        let to: Option<String> = if edges.is_empty() {
            None
        } else {
            // The states are `as_str` spellings: constants, never input.
            let cases: String = edges
                .iter()
                .map(|(from, to)| format!(" WHEN '{}' THEN '{}'", from.as_str(), to.as_str()))
                .collect();
            let froms: Vec<String> = edges
                .iter()
                .map(|(from, _)| format!("'{}'", from.as_str()))
                .collect();
            let (finished, id_param, once) = if step.ends() {
                ("$1", "$2", " AND finished_at IS NULL")
            } else {
                ("NULL", "$1", "")
            };
            let sql = format!(
                "UPDATE rollouts SET state = CASE state{cases} END, finished_at = {finished} \
                 WHERE id = {id_param} AND state IN ({}){once} RETURNING state",
                froms.join(", ")
            );
            let mut query = sqlx::query_scalar(&sql);
            if step.ends() {
                query = query.bind(now_ms());
            }
            query
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(CTX))?
        };
        let Some(to) = to else {
            let from: Option<String> =
                sqlx::query_scalar("SELECT state FROM rollouts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::query(CTX))?;
            let from = parse(from.ok_or_else(|| StoreError::Corrupt {
                context: CTX,
                message: format!("no rollout {id:?}"),
            })?)?;
            return Ok(Changed::Refused(Refused { from, step }));
        };
        let to = parse(to)?;
        if step == RolloutStep::Reopen {
            reopen(&mut tx, id).await?;
        }
        let seq = super::events::insert_event(
            &mut tx,
            &RolloutEvent {
                rollout_id: id.to_owned(),
                seq: 0,
                at_unix_ms: now_ms(),
                kind: event(to),
            },
        )
        .await?;
        tx.commit().await.map_err(StoreError::query(CTX))?;
        Ok(Changed::To(to, seq))
    }

    /// Rollouts no replica ended and that a stopped daemon may have left: pending or
    /// running, or cancelled and not yet ended (a paused one stays paused: it resumes as
    /// it is).
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`] when they cannot be read.
    pub(crate) async fn unended(&self) -> Result<Vec<crate::model::RolloutRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM rollouts WHERE state IN ('pending', 'running') \
             OR (state = 'cancelled' AND finished_at IS NULL)",
            super::rollouts::COLUMNS
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("finding unended rollouts"))?;
        rows.iter().map(super::rollouts::record).collect()
    }
}

/// A new run of rollout `id`: its waves start again, nobody has ended it, and items a
/// stopped daemon left running are pending.
async fn reopen(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str) -> Result<(), StoreError> {
    let q = || StoreError::query("reopening a rollout");
    sqlx::query("UPDATE rollouts SET wave_mark = -1, finished_by = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(q())?;
    sqlx::query(
        "UPDATE rollout_tenants SET state = 'pending', lease_owner = NULL, lease_until = NULL \
         WHERE rollout_id = $1 AND state = 'running'",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(q())?;
    Ok(())
}

fn parse(state: String) -> Result<RolloutState, StoreError> {
    state.parse().map_err(|message| StoreError::Corrupt {
        context: "a rollout's state",
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::Changed;
    use crate::model::{EventKind, RolloutState as S, RolloutStep as T};

    fn changed(by: &str) -> impl FnOnce(S) -> EventKind {
        let by = by.to_owned();
        move |state| EventKind::StateChanged {
            state,
            by,
            reason: String::new(),
        }
    }

    #[tokio::test]
    async fn a_finished_rollout_is_never_cancelled_nor_paused() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            super::super::tests::store_with(&dir, [crate::model::WorkState::Pending; 2]).await;
        let ended = store
            .change_state("r", T::End(S::Succeeded), changed("runner"))
            .await
            .unwrap();
        assert!(matches!(ended, Changed::To(S::Succeeded, _)), "{ended:?}");
        for step in [
            T::Cancel,
            T::Pause,
            T::Resume,
            T::End(S::Failed),
            T::Interrupt,
        ] {
            let r = store
                .change_state("r", step, changed("caller"))
                .await
                .unwrap();
            assert!(
                matches!(r, Changed::Refused(e) if e.from == S::Succeeded && e.step == step),
                "{step:?}: {r:?}"
            );
        }
        let record = store.rollout("r").await.unwrap().unwrap();
        assert_eq!(record.state, S::Succeeded);
    }
}
