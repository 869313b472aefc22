//! Status: a fleet summary from each tenant's last-known state (no tenant is touched), or,
//! with `refresh`, from a fresh read of every selected tenant, each within its deadline so
//! one hung tenant costs its deadline, not the whole call.
//!
//! Every tenant is classified against the current set by one rule,
//! [`KnownState::classify`], which the fleet gauges ([`tally_fleet`]) and `ListTenants`
//! use too. Over a whole fleet the control store groups alike last-known states in one
//! aggregate query and each group is classified once, and only the page's tenants are read
//! from it: the cost grows with the kinds of states, not with per-tenant decoding. A
//! selection of tenants is classified here one stored state at a time.

use std::collections::HashMap;

use super::{
    Engine, EngineError, FleetStatus, Scope, StatusRequest, TenantStatus, reads, request::Page,
};
use crate::{
    fleet::Fleet,
    model::{Classification, KnownState, MigrationSet, Tally, TenantClass, classify},
    store::{Store, StoreError},
};

/// Every tenant of `fleet` classified against `set` from its last-known state: the store
/// groups alike states, each group is classified once, and the tenants it has no state of
/// are never read. Status and the fleet gauges both count this way.
pub(super) async fn tally_fleet(
    store: &Store,
    fleet: &Fleet,
    set: &MigrationSet,
) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    let mut read = 0u32;
    for group in store.known_groups(&fleet.name).await? {
        read += group.count;
        tally.add(
            &group.state.classify(set),
            group.count,
            Some(group.oldest_read_at),
        );
    }
    let never_read = (fleet.tenants().len() as u32).saturating_sub(read);
    if never_read > 0 {
        tally.add(&classify(None, set), never_read, None);
    }
    Ok(tally)
}

impl Engine {
    /// Tenants per version, pending, failed, unreachable and unknown, and one page of
    /// per-tenant lines, each tenant's last-known state classified against the current
    /// set ([`KnownState::classify`]).
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant or a set that does not load;
    /// [`EngineError::Store`] when the last-known state cannot be read.
    pub async fn status(&self, req: StatusRequest) -> Result<FleetStatus, EngineError> {
        let scope = self.scope(&req.read.fleet, &req.read.selector).await?;
        let mut status = self.status_of(&scope, req).await?;
        let ids = scope.tenants.iter().map(|t| t.id.as_str());
        status.drifted =
            super::census::drifted(self.runner.store(), &scope.fleet.name, ids).await?;
        Ok(status)
    }

    /// [`Engine::status`] but the drifted count.
    async fn status_of(
        &self,
        scope: &Scope,
        req: StatusRequest,
    ) -> Result<FleetStatus, EngineError> {
        if !req.refresh && scope.tenants.len() == scope.fleet.tenants().len() {
            return self.whole_fleet_known(scope, &req.read.page).await;
        }
        let known: HashMap<String, KnownState> = if req.refresh {
            let timeout = req.refresh_timeout;
            let (fleet, set) = (&scope.fleet, &scope.set);
            let read: Vec<KnownState> = crate::fleet::read_histories(&scope.tenants, Some(timeout))
                .await
                .iter()
                .zip(&scope.tenants)
                .map(|(history, tenant)| reads::known(fleet, tenant, history, set))
                .collect();
            self.remember(&read).await;
            read.into_iter().map(|k| (k.tenant.clone(), k)).collect()
        } else {
            self.runner
                .store()
                .known_states(&scope.fleet.name)
                .await?
                .into_iter()
                .map(|k| (k.tenant.clone(), k))
                .collect()
        };
        let mut tally = Tally::default();
        let mut lines = Vec::new();
        let page = req.read.page.range(scope.tenants.len());
        for (position, tenant) in scope.tenants.iter().enumerate() {
            let k = known.get(&tenant.id);
            let c = classify(k, &scope.set);
            tally.add(&c, 1, k.map(|k| k.read_at));
            if page.contains(&position) {
                lines.push(line(&tenant.id, k, &c));
            }
        }
        let mut status = summary(scope, &tally);
        status.tenants = lines;
        status.next_page = req.read.page.next_token(scope.tenants.len());
        Ok(status)
    }

    /// Every tenant of the fleet from last-known state: the store groups, and only the
    /// page's tenants are read. The store holds registered tenants only (unregistered ones
    /// are forgotten at start), so tenants without a reading are the rest of the fleet.
    async fn whole_fleet_known(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> Result<FleetStatus, EngineError> {
        let store = self.runner.store();
        let tally = tally_fleet(store, &scope.fleet, &scope.set).await?;
        let mut status = summary(scope, &tally);
        let lines = &scope.tenants[page.range(scope.tenants.len())];
        if !lines.is_empty() {
            let ids: Vec<&str> = lines.iter().map(|t| t.id.as_str()).collect();
            let known: HashMap<String, KnownState> = store
                .known_states_of(&scope.fleet.name, &ids)
                .await?
                .into_iter()
                .map(|k| (k.tenant.clone(), k))
                .collect();
            status.tenants = lines
                .iter()
                .map(|t| {
                    let k = known.get(&t.id);
                    line(&t.id, k, &classify(k, &scope.set))
                })
                .collect();
        }
        status.next_page = page.next_token(scope.tenants.len());
        Ok(status)
    }
}

/// The scope's fleet, latest version and tenant count, and what `tally` counted.
fn summary(scope: &Scope, tally: &Tally) -> FleetStatus {
    FleetStatus {
        fleet: scope.fleet.name.clone(),
        latest_version: scope.set.latest(),
        tenant_count: scope.tenants.len() as u32,
        versions: tally.versions.iter().map(|(v, n)| (*v, *n)).collect(),
        up_to_date: tally.count(TenantClass::UpToDate),
        pending: tally.count(TenantClass::Pending),
        failed: tally.count(TenantClass::Failed) + tally.count(TenantClass::Blocked),
        unreachable: tally.count(TenantClass::Unreachable),
        unknown: tally.count(TenantClass::NeverRead),
        oldest_read_at_unix_ms: tally.oldest_read_at,
        drifted: 0,
        tenants: Vec::new(),
        next_page: None,
    }
}

/// One tenant's line: its last-known state as `c` classified it, or nothing known (with
/// the whole set pending).
fn line(tenant: &str, k: Option<&KnownState>, c: &Classification) -> TenantStatus {
    TenantStatus {
        tenant: tenant.to_owned(),
        current_version: c.current_version,
        pending: c.pending,
        failed_versions: k.map(|k| k.failed_versions.clone()).unwrap_or_default(),
        error: k.and_then(|k| k.error.clone()),
        read_at_unix_ms: k.map(|k| k.read_at),
    }
}
