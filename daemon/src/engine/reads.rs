//! Plan and Verify: the selected tenants' history tables read concurrently, one page at a
//! time, then planned or compared. Reads create nothing on a tenant.

use std::sync::Arc;

use super::{
    Engine, EngineError, FleetPlan, FleetVerification, PlanRequest, ReadRequest, Scope, Selector,
    TenantHistory, TenantPlan, TenantVerification, WaveInfo,
};
use crate::{
    dialect::DbError,
    fleet::Tenant,
    model::{ApplyOptions, Diagnostic, HistoryRecord, Migration, MigrationSet, Plan, RecordStatus},
    plan,
    store::{KnownState, now_ms},
};

/// Each tenant's history (or why it could not be read), in the order given
/// ([`crate::fleet::read_histories`]: concurrent within the connection budget, a shared
/// pool's schema tenants in one query).
pub(super) async fn histories(tenants: &[Arc<Tenant>]) -> Vec<Result<Vec<HistoryRecord>, DbError>> {
    crate::fleet::read_histories(tenants, None).await
}

/// What a history says of its tenant, for the last-known state: the facts, classified
/// against the set of the day whenever shown ([`KnownState::classify`]).
pub(super) fn known(
    fleet: &crate::fleet::Fleet,
    tenant: &Tenant,
    history: &Result<Vec<HistoryRecord>, DbError>,
    set: &MigrationSet,
) -> KnownState {
    let (applied, current_version, failed_versions, blocked, error) = match history {
        Ok(h) => (
            Some(plan::applied(h)),
            plan::current_version(set, h),
            h.iter()
                .filter(|r| r.status.needs_attention())
                .map(|r| r.version.clone())
                .collect(),
            h.iter().any(|r| plan::blocks_apply(set, r, fleet.dialect)),
            None,
        ),
        Err(e) => (None, None, Vec::new(), false, Some(e.to_string())),
    };
    KnownState {
        fleet: fleet.name.clone(),
        tenant: tenant.id.clone(),
        applied,
        current_version,
        failed_versions,
        blocked,
        error,
        read_at: now_ms(),
    }
}

impl Engine {
    /// What an apply would run on each tenant of the requested page, and the waves a
    /// rollout with the request's strategy would run. Touches nothing.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant or a set that does not load;
    /// [`EngineError::UnknownVersion`] for a target version not in the set;
    /// [`EngineError::Strategy`] for a strategy out of range. Unreachable tenants are not errors: their plans say why.
    pub async fn plan(&self, req: PlanRequest) -> Result<FleetPlan, EngineError> {
        let mut scope = self
            .scope_with(&req.fleet, &req.selector, req.set.as_deref())
            .await?;
        let opts = apply_options(&scope, &req)?;
        let strategy = super::rollouts::strategy(&scope, req.strategy)?;
        // The waves an apply would run: its canaries first.
        self.canaries_first(&mut scope, strategy.canary, &req.canary_selector)
            .await?;
        let waves = plan::waves(scope.tenants.len(), &strategy);
        let wave_of = |position: usize| {
            waves
                .iter()
                .find(|w| w.tenants.contains(&position))
                .map_or(0, |w| w.index)
        };
        // A set-only plan reads no tenant.
        let range = match req.set_only {
            true => 0..0,
            false => req.page.range(scope.tenants.len()),
        };
        let page = &scope.tenants[range.clone()];
        let tenants = histories(page)
            .await
            .into_iter()
            .zip(page)
            .zip(range)
            .map(|((history, tenant), position)| TenantPlan {
                tenant: tenant.id.clone(),
                plan: match history {
                    Ok(h) => {
                        let mut p =
                            plan::plan_apply(&scope.set, &h, opts.clone(), scope.fleet.dialect);
                        plan::check_placeholders(&mut p, &scope.fleet.placeholder_values(tenant));
                        p
                    }
                    Err(e) => Plan::unreachable(&e.to_string()),
                },
                wave: wave_of(position),
            })
            .collect();
        let waves = waves
            .iter()
            .map(|w| WaveInfo {
                index: w.index,
                canary: w.canary,
                tenant_count: w.tenants.len() as u32,
                first_tenant: scope.tenants[w.tenants.start].id.clone(),
                last_tenant: scope.tenants[w.tenants.end - 1].id.clone(),
            })
            .collect();
        Ok(FleetPlan {
            fleet: scope.fleet.name.clone(),
            set_digest: scope.set.digest().clone(),
            tenants,
            waves,
            tenant_count: scope.tenants.len() as u32,
            next_page: match req.set_only {
                true => None,
                false => req.page.next_token(scope.tenants.len()),
            },
            set_warnings: scope.set.warnings().to_vec(),
            whole_set: req.set_only.then(|| scope.set.clone()),
        })
    }

    /// Compares each tenant of the requested page's history with the set, and keeps what
    /// it read as their last-known state. Touches no tenant.
    ///
    /// # Errors
    /// As [`Engine::plan`].
    pub async fn verify(&self, req: ReadRequest) -> Result<FleetVerification, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &req.selector).await?;
        let range = req.page.range(tenants.len());
        let page = &tenants[range];
        let read = histories(page).await;
        let known: Vec<KnownState> = read
            .iter()
            .zip(page)
            .map(|(h, t)| known(&fleet, t, h, &set))
            .collect();
        self.remember(&known).await;
        let mut schemas = match req.schema {
            true => self.schema_classes(&fleet.name, page).await?,
            false => std::collections::HashMap::new(),
        };
        let verified = read
            .into_iter()
            .zip(page)
            .map(|(history, tenant)| {
                let (current_version, pending, diagnostics) = match history {
                    Ok(h) => (
                        plan::current_version(&set, &h),
                        plan::pending(&set, &h, None).count() as u32,
                        plan::check_history(&set, &h, fleet.dialect),
                    ),
                    Err(e) => (None, 0, vec![Diagnostic::unreachable(&e.to_string())]),
                };
                TenantVerification {
                    tenant: tenant.id.clone(),
                    current_version,
                    pending,
                    diagnostics,
                    schema: schemas.remove(&tenant.id),
                }
            })
            .collect();
        Ok(FleetVerification {
            fleet: fleet.name.clone(),
            tenants: verified,
            tenant_count: tenants.len() as u32,
            next_page: req.page.next_token(tenants.len()),
        })
    }

    /// Tenant `tenant`'s history table, read now, with what the set says of it; the read
    /// is kept as its last-known state.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant or a set that does not load;
    /// [`EngineError::Tenant`] when the tenant cannot be read.
    pub async fn history(&self, fleet: &str, tenant: &str) -> Result<TenantHistory, EngineError> {
        let selector = Selector {
            ids: vec![tenant.to_owned()],
            ..Default::default()
        };
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(fleet, &selector).await?;
        let read = histories(&tenants).await;
        let known: Vec<KnownState> = read
            .iter()
            .zip(&tenants)
            .map(|(h, t)| known(&fleet, t, h, &set))
            .collect();
        self.remember(&known).await;
        let mut history = read
            .into_iter()
            .next()
            .unwrap_or_else(|| Ok(Vec::new()))
            .map_err(|source| EngineError::Tenant {
                fleet: fleet.name.clone(),
                tenant: tenant.to_owned(),
                source,
            })?;
        // Listed in the set's order (diesel's text order for a diesel set).
        history.sort_by(|a, b| set.compare(&a.version, &b.version));
        let applied_where =
            |drifted: fn(&HistoryRecord, &Migration) -> bool| -> Vec<crate::model::MigrationKey> {
                history
                    .iter()
                    .filter(|r| r.status == RecordStatus::Applied)
                    .filter(|r| set.for_record(r).is_some_and(|m| drifted(r, m)))
                    .map(|r| r.version.clone())
                    .collect()
            };
        Ok(TenantHistory {
            tenant: tenant.to_owned(),
            current_version: plan::current_version(&set, &history),
            drifted: applied_where(HistoryRecord::drifted),
            down_drifted: applied_where(HistoryRecord::down_drifted),
            // As `verify` counts them: an applied record whose file is gone (a rolled-back
            // or forgotten one is history, not missing).
            missing: history
                .iter()
                .filter(|r| r.status == RecordStatus::Applied && set.for_record(r).is_none())
                .map(|r| r.version.clone())
                .collect(),
            pending: plan::pending(&set, &history, None)
                .map(|m| m.version.clone())
                .collect(),
            records: history,
        })
    }

    /// Stores tenants' last-known state; a store that fails costs the record, not the read.
    pub(super) async fn remember(&self, known: &[KnownState]) {
        if let Err(e) = self.runner.store().put_known(known).await {
            tracing::warn!("keeping last-known tenant states: {e}");
        }
    }
}

/// `Ok` when `target` names a versioned migration of `set` (a repeatable has no version,
/// so a request naming one is refused where it is read: `api::receive`).
///
/// # Errors
/// [`EngineError::UnknownVersion`] naming the fleet and the version otherwise.
pub(super) fn check_target(
    fleet: &str,
    set: &crate::model::MigrationSet,
    target: &crate::model::Version,
) -> Result<(), EngineError> {
    if set.get(*target).is_none() {
        return Err(EngineError::UnknownVersion {
            fleet: fleet.to_owned(),
            version: *target,
        });
    }
    Ok(())
}

/// The apply options of a plan request; the target must name a versioned migration of the
/// set ([`check_target`]).
pub(super) fn apply_options(scope: &Scope, req: &PlanRequest) -> Result<ApplyOptions, EngineError> {
    if let Some(v) = &req.target {
        check_target(&scope.fleet.name, &scope.set, v)?;
    }
    Ok(ApplyOptions {
        target: req.target,
        allow_out_of_order: req.allow_out_of_order,
        accept_data_loss: req.accept_data_loss,
    })
}
