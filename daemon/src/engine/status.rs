//! Status: a fleet summary from each tenant's last-known state (no tenant is touched), or,
//! with `refresh`, from a fresh read of every selected tenant, each within its deadline so
//! one hung tenant costs its deadline, not the whole call.
//!
//! Over a whole fleet the last-known summary is counted by the control store in one
//! aggregate query, and only the page's tenants are read from it: the cost does not grow with
//! per-tenant decoding (100,000 tenants: see `docs/benchmarks.md`, "Status from last-known
//! state"). A selection of tenants is summarised here from their stored states.

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, stream};

use super::{
    Engine, EngineError, FleetStatus, Scope, StatusRequest, TenantStatus, reads, request::Page,
};
use crate::{dialect::DbError, store::KnownState};

/// Tenants read at once by a refresh (within the connection budget).
const REFRESH_IN_FLIGHT: usize = 64;

impl Engine {
    /// Tenants per version, pending, failed, unreachable and unknown, and one page of
    /// per-tenant lines.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant or a set that does not load;
    /// [`EngineError::Store`] when the last-known state cannot be read.
    pub async fn status(&self, req: StatusRequest) -> Result<FleetStatus, EngineError> {
        let scope = self.scope(&req.read.fleet, &req.read.selector)?;
        if !req.refresh && scope.tenants.len() == scope.fleet.tenants().len() {
            return self.whole_fleet_known(&scope, &req.read.page).await;
        }
        let fleet = &scope.fleet.name;
        let known: HashMap<String, KnownState> = if req.refresh {
            let timeout = req.refresh_timeout;
            let set = &scope.set;
            let read: Vec<KnownState> = stream::iter(scope.tenants.iter().cloned())
                .map(|tenant| async move {
                    let history = match tokio::time::timeout(timeout, tenant.read_history()).await {
                        Ok(history) => history,
                        Err(_) => Err(DbError::Deadline {
                            timeout_ms: timeout.as_millis() as u64,
                        }),
                    };
                    reads::known(fleet, &tenant, &history, set)
                })
                .buffered(REFRESH_IN_FLIGHT)
                .collect()
                .await;
            self.remember(&read).await;
            read.into_iter().map(|k| (k.tenant.clone(), k)).collect()
        } else {
            self.runner
                .store()
                .known_states(fleet)
                .await?
                .into_iter()
                .map(|k| (k.tenant.clone(), k))
                .collect()
        };
        let mut status = empty(&scope);
        let mut versions: BTreeMap<Option<crate::model::Version>, u32> = BTreeMap::new();
        let page = req.read.page.range(scope.tenants.len());
        for (position, tenant) in scope.tenants.iter().enumerate() {
            let k = known.get(&tenant.id);
            match k {
                None => status.unknown += 1,
                Some(k) if k.error.is_some() => status.unreachable += 1,
                Some(k) => {
                    *versions.entry(k.current_version).or_default() += 1;
                    if !k.failed_versions.is_empty() {
                        status.failed += 1;
                    } else if k.pending > 0 {
                        status.pending += 1;
                    } else {
                        status.up_to_date += 1;
                    }
                }
            }
            if let Some(k) = k {
                status.oldest_read_at_unix_ms = Some(
                    status
                        .oldest_read_at_unix_ms
                        .map_or(k.read_at, |oldest| oldest.min(k.read_at)),
                );
            }
            if page.contains(&position) {
                status.tenants.push(line(&tenant.id, k));
            }
        }
        status.versions = versions.into_iter().collect();
        status.next_page = req.read.page.next_token(scope.tenants.len());
        Ok(status)
    }

    /// Every tenant of the fleet from last-known state: the store counts, and only the
    /// page's tenants are read. The store holds registered tenants only (unregistered ones
    /// are forgotten at start), so tenants without a reading are the rest of the fleet.
    async fn whole_fleet_known(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> Result<FleetStatus, EngineError> {
        let store = self.runner.store();
        let fleet = &scope.fleet.name;
        let sum = store.known_summary(fleet).await?;
        let mut status = empty(scope);
        status.unknown = status.tenant_count.saturating_sub(sum.read);
        status.up_to_date = sum.up_to_date;
        status.pending = sum.pending;
        status.failed = sum.failed;
        status.unreachable = sum.unreachable;
        status.oldest_read_at_unix_ms = sum.oldest_read_at;
        status.versions = sum.versions;
        let lines = &scope.tenants[page.range(scope.tenants.len())];
        if !lines.is_empty() {
            let ids: Vec<&str> = lines.iter().map(|t| t.id.as_str()).collect();
            let known: HashMap<String, KnownState> = store
                .known_states_of(fleet, &ids)
                .await?
                .into_iter()
                .map(|k| (k.tenant.clone(), k))
                .collect();
            status.tenants = lines
                .iter()
                .map(|t| line(&t.id, known.get(&t.id)))
                .collect();
        }
        status.next_page = page.next_token(scope.tenants.len());
        Ok(status)
    }
}

/// A status with the scope's fleet, latest version and tenant count, nothing counted.
fn empty(scope: &Scope) -> FleetStatus {
    FleetStatus {
        fleet: scope.fleet.name.clone(),
        latest_version: scope.set.latest(),
        tenant_count: scope.tenants.len() as u32,
        ..FleetStatus::default()
    }
}

/// One tenant's line: its last-known state, or nothing known.
fn line(tenant: &str, k: Option<&KnownState>) -> TenantStatus {
    TenantStatus {
        tenant: tenant.to_owned(),
        current_version: k.and_then(|k| k.current_version),
        pending: k.map_or(0, |k| k.pending),
        failed_versions: k.map(|k| k.failed_versions.clone()).unwrap_or_default(),
        error: k.and_then(|k| k.error.clone()),
        read_at_unix_ms: k.map(|k| k.read_at),
    }
}
