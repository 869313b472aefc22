//! Tenants registered through the API, as every replica sees them: the control store holds
//! the list, and each replica makes its fleets' registered tenants exactly that list
//! ([`Fleet::apply_registered`]) at start and whenever it changed (issue 24, item 8). The
//! rollout runner only reads the fleets; when it meets a tenant it does not know yet it
//! asks for a fresh read ([`Registry::fresh`]) and waits for it.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, PoisonError, atomic::Ordering},
    time::Duration,
};

use super::{Fleet, FleetError, NewTenant, Registry, Tenant, TenantSource};

/// One registration as the control store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Registered {
    /// The tenant's id.
    pub(crate) id: String,
    /// Its DSN. Secret.
    pub(crate) dsn: String,
    /// Its PostgreSQL schema.
    pub(crate) schema: Option<String>,
    /// Its labels.
    pub(crate) labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("id", &self.id)
            .field("dsn", &"<redacted>")
            .field("schema", &self.schema)
            .field("labels", &self.labels)
            .finish()
    }
}

/// What one read of the registrations changed in a fleet.
#[derive(Debug, Default)]
pub(crate) struct RegistryChange {
    /// Ids added.
    pub(crate) added: Vec<String>,
    /// Ids removed (deregistered, through any replica).
    pub(crate) removed: Vec<String>,
    /// Ids registered again with another DSN, schema or labels.
    pub(crate) changed: Vec<String>,
    /// Registrations left out, each with why (an id the fleet has from another source, a
    /// DSN that no longer fits).
    pub(crate) rejected: Vec<(String, FleetError)>,
}

impl RegistryChange {
    /// True when the fleet's list did not change.
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Fleet {
    /// The tenant of registration `r`, not yet added. Nothing connects.
    ///
    /// # Errors
    /// As [`Fleet::new_tenant`].
    pub(crate) fn registered_tenant(&self, r: &Registered) -> Result<Arc<Tenant>, FleetError> {
        let mut tenant = self.new_tenant(NewTenant {
            id: &r.id,
            dsn: &r.dsn,
            schema: r.schema.as_deref(),
            labels: &r.labels,
            source: TenantSource::Api,
        })?;
        if let Some(t) = Arc::get_mut(&mut tenant) {
            t.registered = Some(Box::new(r.clone()));
        }
        Ok(tenant)
    }

    /// Makes the fleet's registered tenants exactly `rows` (in their order, after the
    /// fleet's configured and discovered tenants): adds new ids, removes those no longer
    /// registered, replaces those registered again differently (rollouts already running
    /// keep the handle they hold). A row whose id the fleet has from its configuration or
    /// discovery is left out and reported, never merged.
    pub(crate) fn apply_registered(&self, rows: &[Registered]) -> RegistryChange {
        let mut change = RegistryChange::default();
        let mut list = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let mut next: Vec<Arc<Tenant>> = list
            .iter()
            .filter(|t| t.source != TenantSource::Api)
            .cloned()
            .collect();
        let others: BTreeSet<String> = next.iter().map(|t| t.id.clone()).collect();
        let mut seen = BTreeSet::new();
        for row in rows {
            if let Some(other) = next
                .iter()
                .find(|t| others.contains(&row.id) && t.id == row.id)
            {
                let e = FleetError::DuplicateTenant {
                    fleet: self.name.clone(),
                    tenant: row.id.clone(),
                    existing: other.source.origin(),
                };
                change.rejected.push((row.id.clone(), e));
                continue;
            }
            if !seen.insert(row.id.clone()) {
                continue;
            }
            let previous = list
                .iter()
                .find(|t| t.source == TenantSource::Api && t.id == row.id);
            let tenant = match previous {
                Some(old) if old.registered.as_deref() == Some(row) => old.clone(),
                _ => match self.registered_tenant(row) {
                    Ok(t) => {
                        match previous {
                            Some(_) => change.changed.push(row.id.clone()),
                            None => change.added.push(row.id.clone()),
                        }
                        t
                    }
                    Err(e) => {
                        change.rejected.push((row.id.clone(), e));
                        continue;
                    }
                },
            };
            next.push(tenant);
        }
        change.removed = list
            .iter()
            .filter(|t| t.source == TenantSource::Api && !seen.contains(&t.id))
            .map(|t| t.id.clone())
            .collect();
        if !change.is_empty() {
            *list = Arc::new(next);
        }
        change
    }
}

impl Registry {
    /// Says that the registrations were just read from the control store (by the
    /// replica's refresh loop): wakes whoever waits in [`Registry::fresh`].
    pub(crate) fn refreshed(&self) {
        self.refreshing.store(true, Ordering::SeqCst);
        self.refreshes.send_modify(|n| *n += 1);
    }

    /// Waits, at most `within`, until the registrations have been read from the control
    /// store after this call (asking for that read now); true once they have, false when
    /// they could not be read in time. At once (true) when no refresh loop runs: the
    /// fleets are what they are. What a rollout does before it calls a tenant unknown.
    pub(crate) async fn fresh(&self, within: Duration) -> bool {
        if !self.refreshing.load(Ordering::SeqCst) {
            return true;
        }
        let mut passes = self.refreshes.subscribe();
        let seen = *passes.borrow_and_update();
        self.refresh_wanted.notify_one();
        // The pass under way may have read before this call: wait for the one after it.
        tokio::time::timeout(within, passes.wait_for(|n| *n >= seen + 2))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Completes when someone asks for a read of the registrations ([`Registry::fresh`]).
    pub(crate) async fn refresh_wanted(&self) {
        self.refresh_wanted.notified().await;
    }
}
