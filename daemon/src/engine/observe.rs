//! Observation: what a metrics scrape reports (each fleet's health from last-known state,
//! rollouts by state, the connection budget), and readiness. No tenant is touched: one
//! aggregate query per fleet and two over the rollouts, against the control store.

use super::{Engine, EngineError};
use crate::model::{
    FleetHealth, MigrationSet, Observation, RolloutCount, RolloutState, TenantClass, WorkCount,
    WorkState,
};

impl Engine {
    /// Every fleet's health from its tenants' last-known state, rollouts and the tenants of
    /// unfinished rollouts by state, and the connection budget's use.
    ///
    /// Each tenant is counted in one class of [`crate::model::KnownState::classify`],
    /// as `Status` counts it: `behind` is its `pending`, `failed` its failed (blocked
    /// included). A fleet whose set no longer loads reports no `latest_version` and nobody
    /// behind (a scrape still answers; `Ready` says what is wrong). Every configured fleet
    /// has a count for every rollout state and work state, 0 included, so a dashboard
    /// shows 0 rather than no data (issue 32, item 10).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the control store cannot be read.
    pub async fn observe(&self) -> Result<Observation, EngineError> {
        let store = self.runner.store();
        let mut fleets = Vec::new();
        for fleet in self.registry.fleets() {
            let set = fleet.load_set().ok();
            // A set that no longer loads: nothing can be pending against it, and
            // `Ready` says what is wrong.
            let judged = match &set {
                Some(set) => std::sync::Arc::clone(set),
                None => std::sync::Arc::new(MigrationSet::default()),
            };
            let tally = super::status::tally_fleet(store, fleet, &judged).await?;
            let ids = fleet.tenants();
            let drifted =
                super::census::drifted(store, &fleet.name, ids.iter().map(|t| t.id.as_str()))
                    .await?;
            fleets.push(FleetHealth {
                fleet: fleet.name.clone(),
                dialect: fleet.dialect,
                tenants: fleet.tenants().len() as u32,
                latest_version: set.as_ref().and_then(|set| set.latest()),
                behind: tally.count(TenantClass::Pending),
                failed: tally.count(TenantClass::Failed) + tally.count(TenantClass::Blocked),
                unreachable: tally.count(TenantClass::Unreachable),
                unknown: tally.count(TenantClass::NeverRead),
                lock_timeout_s: fleet.lock_timeout.as_secs_f64(),
                broken: set.is_none(),
                drifted,
            });
        }
        let mut rollouts = store.rollout_counts().await?;
        let mut rollout_tenants = store.unfinished_work_counts().await?;
        for f in &fleets {
            for state in RolloutState::ALL {
                if !rollouts
                    .iter()
                    .any(|r| r.fleet == f.fleet && r.state == state)
                {
                    rollouts.push(RolloutCount {
                        fleet: f.fleet.clone(),
                        state,
                        count: 0,
                    });
                }
            }
            for state in WorkState::ALL {
                if !rollout_tenants
                    .iter()
                    .any(|w| w.fleet == f.fleet && w.state == state)
                {
                    rollout_tenants.push(WorkCount {
                        fleet: f.fleet.clone(),
                        state,
                        count: 0,
                    });
                }
            }
        }
        Ok(Observation {
            fleets,
            rollouts,
            rollout_tenants,
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
