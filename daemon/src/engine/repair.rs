//! Repair: an operator's verdict on one version's history record, on one tenant (a refusal
//! is the call's error) or on every selected tenant (each answered on its own), under each
//! tenant's lock, `concurrency` tenants at once. A record already as asked is left alone,
//! so repeating a repair is a no-op.

use futures::StreamExt;

use super::{Caller, Engine, EngineError, Scope, Selector};
use crate::{
    migrate::{self, Repaired},
    model::{MigrationKey, RecordStatus, RepairAction},
};

/// `Repair`: which tenants, which version, what to record.
#[derive(Debug, Clone)]
pub struct RepairRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub tenants: RepairTenants,
    /// The migration whose record is rewritten (a repeatable's too).
    pub version: MigrationKey,
    /// What to record.
    pub action: RepairAction,
}

/// The tenants a repair rewrites.
#[derive(Debug, Clone)]
pub enum RepairTenants {
    /// One tenant, whose refusal is the call's error.
    One(String),
    /// The tenants a selector chooses (every tenant of the fleet when empty), each answered
    /// in its own [`RepairOutcome`].
    Selected(Selector),
}

/// What a repair did on one tenant.
#[derive(Debug, Clone)]
pub struct RepairOutcome {
    /// The tenant.
    pub tenant: String,
    /// The migration asked for.
    pub version: MigrationKey,
    /// The record's status before; `None` when the tenant had no record of the version.
    pub previous: Option<RecordStatus>,
    /// False when the record was already as asked (nothing written) or the tenant was
    /// refused.
    pub changed: bool,
    /// Why the tenant was refused (many-tenant requests only): its record is not in a state
    /// the action applies to, its lock did not come, or it is unreachable. Nothing was
    /// written on it.
    pub error: Option<String>,
}

impl Engine {
    /// Rewrites `req.version`'s record on the chosen tenants as `req.action` says (see
    /// `migrate::repair` for each action's rule), each under its tenant lock, and logs each
    /// change in the tenant's history log and the daemon's log, naming `caller`.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant, or a selector that matches
    /// nothing. With [`RepairTenants::One`]: [`EngineError::Tenant`] when the lock does not
    /// come or the tenant cannot be read or written, [`EngineError::Repair`] when its record
    /// is not in a state the action applies to. With a selector, per-tenant refusals are
    /// outcomes, not errors.
    pub async fn repair(
        &self,
        req: RepairRequest,
        caller: &Caller,
    ) -> Result<Vec<RepairOutcome>, EngineError> {
        let (one, selector) = match &req.tenants {
            RepairTenants::One(tenant) => (
                true,
                Selector {
                    ids: vec![tenant.clone()],
                    ..Default::default()
                },
            ),
            RepairTenants::Selected(selector) => (false, selector.clone()),
        };
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &selector).await?;
        let by = self.registry.instance_id.clone();
        let runs = tenants.into_iter().map(|tenant| {
            let (fleet, set, by) = (&fleet, &set, &by);
            let version = req.version.clone();
            async move {
                let done = migrate::repair(
                    &tenant,
                    fleet.lock_timeout,
                    by,
                    set,
                    version.clone(),
                    req.action,
                )
                .await;
                if let Ok(Repaired { previous, changed }) = done {
                    tracing::info!(
                        fleet = %fleet.name,
                        tenant = %tenant.id,
                        version = %version,
                        action = ?req.action,
                        ?previous,
                        changed,
                        caller = %caller.who,
                        "repaired"
                    );
                }
                (tenant.id.clone(), done)
            }
        });
        let done: Vec<_> = futures::stream::iter(runs)
            .buffered(fleet.concurrency.max(1))
            .collect()
            .await;
        let mut outcomes = Vec::with_capacity(done.len());
        for (tenant, result) in done {
            let (previous, changed, error) = match result {
                Ok(Repaired { previous, changed }) => (previous, changed, None),
                Err(e) if one => {
                    return Err(EngineError::repair(&fleet.name, &tenant, e));
                }
                Err(e) => (None, false, Some(e.to_string())),
            };
            outcomes.push(RepairOutcome {
                tenant,
                version: req.version.clone(),
                previous,
                changed,
                error,
            });
        }
        Ok(outcomes)
    }
}
