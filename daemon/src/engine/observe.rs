//! Observation: what a metrics scrape reports (each fleet's health from last-known state,
//! rollouts by state, the connection budget), and readiness. No tenant is touched: one
//! aggregate query per fleet and two over the rollouts, against the control store.

use super::{Engine, EngineError};
use crate::model::{FleetHealth, Observation};

impl Engine {
    /// Every fleet's health from its tenants' last-known state, rollouts and the tenants of
    /// unfinished rollouts by state, and the connection budget's use.
    ///
    /// A fleet whose set no longer loads reports no `latest_version` and nobody behind (a
    /// scrape still answers; `Ready` says what is wrong).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the control store cannot be read.
    pub async fn observe(&self) -> Result<Observation, EngineError> {
        let store = self.runner.store();
        let mut fleets = Vec::new();
        for fleet in self.registry.fleets() {
            let set = fleet.load_set().ok();
            let latest = set.as_ref().and_then(|set| set.latest());
            let known = store.known_summary(&fleet.name).await?;
            let tenants = fleet.tenants().len() as u32;
            let behind = latest.map_or(0, |latest| {
                known
                    .versions
                    .iter()
                    .filter(|(version, _)| {
                        version.is_none_or(|v| {
                            set.as_ref().is_some_and(|s| s.compare(v, latest).is_lt())
                        })
                    })
                    .map(|(_, count)| count)
                    .sum()
            });
            fleets.push(FleetHealth {
                fleet: fleet.name.clone(),
                dialect: fleet.dialect,
                tenants,
                latest_version: latest,
                behind,
                failed: known.failed,
                unreachable: known.unreachable,
                unknown: tenants.saturating_sub(known.read),
                lock_timeout_s: fleet.lock_timeout.as_secs_f64(),
                broken: set.is_none(),
            });
        }
        Ok(Observation {
            fleets,
            rollouts: store.rollout_counts().await?,
            rollout_tenants: store.unfinished_work_counts().await?,
            budget: self.registry.budget_use(),
        })
    }

    /// Answers when the engine can serve: the control store answers a query. A fleet whose
    /// set does not load is broken, and said so (`ListFleets`, `avocet_fleet_broken`, the
    /// log), but does not make the daemon unready: its other fleets, and the rollouts'
    /// control, are served (issue 24, item 9).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the control store does not answer.
    pub async fn ready(&self) -> Result<(), EngineError> {
        self.runner.store().ping().await?;
        Ok(())
    }
}
