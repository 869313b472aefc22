//! Repair: an operator's verdict on one version's history record, on one tenant (a refusal
//! is the call's error) or on every selected tenant (each answered on its own), under each
//! tenant's lock, `concurrency` tenants at once. A record already as asked is left alone,
//! so repeating a repair is a no-op.

use futures::StreamExt;

use super::{Caller, Engine, EngineError, Scope, Selector};
use crate::{
    migrate::{self, Repaired},
    model::{RecordStatus, RepairAction, Version},
};

/// `Repair`: which tenants, which version, what to record.
#[derive(Debug, Clone)]
pub struct RepairRequest {
    /// The fleet.
    pub fleet: String,
    /// One tenant, whose refusal is the call's error; `None`: the tenants `selector`
    /// chooses, each answered in its [`RepairOutcome`].
    pub tenant: Option<String>,
    /// Which tenants when `tenant` is `None` (every tenant of the fleet when empty).
    pub selector: Selector,
    /// The version whose record is rewritten.
    pub version: Version,
    /// What to record.
    pub action: RepairAction,
}

/// What a repair did on one tenant.
#[derive(Debug, Clone)]
pub struct RepairOutcome {
    /// The tenant.
    pub tenant: String,
    /// The version asked for.
    pub version: Version,
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
    /// nothing; [`EngineError::InvalidArgument`] when both a tenant and a selector are
    /// given. With one `tenant`: [`EngineError::Tenant`] when the lock does not come or the
    /// tenant cannot be read or written, [`EngineError::FailedPrecondition`] when its record
    /// is not in a state the action applies to. With a selector, per-tenant refusals are
    /// outcomes, not errors.
    pub async fn repair(
        &self,
        req: RepairRequest,
        caller: &Caller,
    ) -> Result<Vec<RepairOutcome>, EngineError> {
        let chosen = !req.selector.ids.is_empty() || !req.selector.labels.is_empty();
        let selector = match &req.tenant {
            Some(_) if chosen => {
                return Err(EngineError::InvalidArgument(
                    "give one tenant or a tenant selector, not both".into(),
                ));
            }
            Some(tenant) => Selector {
                ids: vec![tenant.clone()],
                ..Default::default()
            },
            None => req.selector.clone(),
        };
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &selector)?;
        let by = self.registry.instance_id.clone();
        let runs = tenants.into_iter().map(|tenant| {
            let (fleet, set, by) = (&fleet, &set, &by);
            async move {
                let done = migrate::repair(
                    &tenant,
                    fleet.lock_timeout,
                    by,
                    set,
                    req.version,
                    req.action,
                )
                .await;
                if let Ok(Repaired { previous, changed }) = done {
                    tracing::info!(
                        fleet = %fleet.name,
                        tenant = %tenant.id,
                        version = %req.version,
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
                Err(e) if req.tenant.is_some() => {
                    return Err(EngineError::repair(&fleet.name, &tenant, e));
                }
                Err(e) => (None, false, Some(e.to_string())),
            };
            outcomes.push(RepairOutcome {
                tenant,
                version: req.version,
                previous,
                changed,
                error,
            });
        }
        Ok(outcomes)
    }
}
