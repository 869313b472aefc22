//! Counts for observation (a metrics scrape): rollouts by state, tenants of unfinished
//! rollouts by work state, and a ping. Each is one aggregate query.

use std::str::FromStr;

use super::{Store, StoreError, get};
use crate::model::{RolloutCount, RolloutState, WorkCount, WorkState};

impl Store {
    /// Answers when the store answers a trivial query.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it does not.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("pinging the control store"))
    }

    /// Rollouts per fleet and state, every rollout the store keeps but dry runs (they change
    /// nothing: a dashboard's succeeded and failed rollouts are real ones).
    ///
    /// # Errors
    /// [`StoreError::Query`] when they cannot be counted; [`StoreError::Corrupt`] for a
    /// state this daemon does not know.
    pub(crate) async fn rollout_counts(&self) -> Result<Vec<RolloutCount>, StoreError> {
        const CTX: &str = "counting rollouts by state";
        let sql = "SELECT fleet, state, COUNT(*) FROM rollouts WHERE dry_run = 0 \
                   GROUP BY fleet, state";
        self.grouped(sql, CTX)
            .await?
            .into_iter()
            .map(|(fleet, state, count)| {
                Ok(RolloutCount {
                    fleet,
                    state: RolloutState::from_str(&state).map_err(|message| {
                        StoreError::Corrupt {
                            context: CTX,
                            message,
                        }
                    })?,
                    count,
                })
            })
            .collect()
    }

    /// Tenants of pending, running or paused rollouts per fleet and work state.
    ///
    /// # Errors
    /// [`StoreError::Query`] when they cannot be counted.
    pub(crate) async fn unfinished_work_counts(&self) -> Result<Vec<WorkCount>, StoreError> {
        let sql = "SELECT r.fleet, t.state, COUNT(*) FROM rollout_tenants t \
             JOIN rollouts r ON r.id = t.rollout_id \
             WHERE r.state IN ('pending', 'running', 'paused') \
             GROUP BY r.fleet, t.state";
        Ok(self
            .grouped(sql, "counting tenants of unfinished rollouts")
            .await?
            .into_iter()
            .map(|(fleet, state, count)| WorkCount {
                fleet,
                state: WorkState::parse(&state),
                count,
            })
            .collect())
    }

    /// The rows of `sql`, which selects a fleet, a state and a `COUNT(*)`, in that order.
    async fn grouped(
        &self,
        sql: &str,
        ctx: &'static str,
    ) -> Result<Vec<(String, String, u32)>, StoreError> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(ctx))?;
        rows.iter()
            .map(|row| {
                Ok((
                    get(row, 0, ctx)?,
                    get(row, 1, ctx)?,
                    get::<i64>(row, 2, ctx)? as u32,
                ))
            })
            .collect()
    }
}
