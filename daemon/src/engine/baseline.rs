//! Baseline: versions up to a target, or those another tool's history table says are applied
//! (adoption), recorded as applied without running them, on the selected tenants that have
//! no history (their schema came from elsewhere).

use futures::StreamExt;

use super::{Caller, Engine, EngineError, Scope, Selector};
use crate::{
    migrate,
    model::{BaselineSource, SetFormat},
};

/// `Baseline`: which tenants, and the highest version to record as applied.
#[derive(Debug, Clone)]
pub struct BaselineRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
    /// What to record: every version up to one (it must name a migration of the set), or
    /// what another tool applied.
    pub source: BaselineSource,
}

/// What a baseline did on one tenant.
#[derive(Debug, Clone)]
pub struct BaselineOutcome {
    /// The tenant.
    pub tenant: String,
    /// Versions recorded as applied; 0 with an error.
    pub baselined: u32,
    /// Why nothing was recorded: it has history, its lock did not come, it is unreachable.
    pub error: Option<String>,
    /// Nothing was recorded because the tenant has history already (the expected case for
    /// a tenant Avocet manages, not a failure).
    pub has_history: bool,
}

impl Engine {
    /// Records the versions `req.source` names as applied on every selected tenant with no
    /// history, each under its lock, `concurrency` tenants at once, and logs the call
    /// naming `caller`. A tenant that has history, or whose other tool's history cannot be
    /// adopted, is left alone and reported.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet, a selector matching nothing or a set
    /// that does not load; [`EngineError::UnknownVersion`] when an `UpTo` version is not a
    /// versioned migration of the set (a request naming a repeatable is refused where it is
    /// read, [`EngineError::RepeatableTarget`]); [`EngineError::AdoptNeedsFormat`] when an
    /// `Adopt` names no tool. Per-tenant failures are outcomes, not errors.
    pub async fn baseline(
        &self,
        req: BaselineRequest,
        caller: &Caller,
    ) -> Result<Vec<BaselineOutcome>, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &req.selector).await?;
        match &req.source {
            BaselineSource::UpTo(to) => super::reads::check_target(&fleet.name, &set, to)?,
            BaselineSource::Adopt(SetFormat::Auto) => {
                return Err(EngineError::AdoptNeedsFormat);
            }
            _ => {}
        }
        let source = req.source.clone();
        let by = self.registry.instance_id.clone();
        let concurrency = fleet.concurrency.max(1);
        let runs = tenants.into_iter().map(|tenant| {
            let (fleet, set, by) = (fleet.clone(), set.clone(), by.clone());
            let source = source.clone();
            async move {
                let done = migrate::baseline(&tenant, fleet.lock_timeout, &set, source, &by).await;
                BaselineOutcome {
                    tenant: tenant.id.clone(),
                    baselined: *done.as_ref().unwrap_or(&0),
                    has_history: matches!(done, Err(migrate::BaselineError::HasHistory { .. })),
                    error: done.err().map(|e| e.to_string()),
                }
            }
        });
        let outcomes: Vec<BaselineOutcome> = futures::stream::iter(runs)
            .buffered(concurrency)
            .collect()
            .await;
        let baselined = outcomes.iter().filter(|o| o.error.is_none()).count();
        tracing::info!(
            fleet = %fleet.name,
            source = ?req.source,
            baselined,
            refused = outcomes.len() - baselined,
            caller = %caller.who,
            "baseline"
        );
        Ok(outcomes)
    }
}
