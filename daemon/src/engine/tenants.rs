//! Tenants registered through the API: added and removed at run time, kept in the control
//! store, and loaded into their fleets at every start.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::{Caller, Engine, EngineError, TenantInfo};
use crate::{
    fleet::{DiscoveryReport, FleetError, Registered, Registry, Tenant, TenantSource, discover},
    model::{check_id, check_identifier, check_label},
    store::{RegisteredTenant, Store, StoreError},
};

/// A tenant to register: `Fleet.RegisterTenant`'s request as domain values.
#[derive(Clone)]
pub struct Registration {
    /// The fleet.
    pub fleet: String,
    /// `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`, unique within the fleet.
    pub tenant: String,
    /// Its DSN, of the fleet's dialect. Secret.
    pub dsn: String,
    /// PostgreSQL schema for schema-per-tenant fleets.
    pub schema: Option<String>,
    /// Labels matched by selectors.
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("fleet", &self.fleet)
            .field("tenant", &self.tenant)
            .field("dsn", &"<redacted>")
            .field("schema", &self.schema)
            .field("labels", &self.labels)
            .finish()
    }
}

impl Engine {
    /// Registers a tenant: checks it, stores it (with an audit entry naming `caller`) and
    /// adds it to its fleet, where the next request finds it. Nothing connects to it.
    ///
    /// # Errors
    /// [`EngineError::InvalidName`] for a bad id, schema or label;
    /// [`EngineError::Registration`] for a DSN the fleet's policy refuses (that does not
    /// parse, holds a password or a parameter not allowed, on a host outside the fleet's
    /// `allowed_hosts`, a SQLite file outside its `sqlite_root` or the control store, a
    /// server that is not SCRAM under `require_scram`); [`EngineError::InvalidTarget`] for
    /// a DSN of another dialect; [`EngineError::DatabaseTaken`] for the database of a
    /// tenant already known; [`FleetError::UnknownFleet`];
    /// [`FleetError::DuplicateTenant`] when the fleet has the id from any source;
    /// [`EngineError::Store`] when the store refuses the write.
    pub async fn register_tenant(
        &self,
        r: Registration,
        caller: &Caller,
    ) -> Result<TenantInfo, EngineError> {
        let fleet = self.registry.fleet(&r.fleet)?;
        let invalid =
            |what: &'static str| move |message| EngineError::InvalidName { what, message };
        check_id(&r.tenant).map_err(invalid("tenant"))?;
        if let Some(schema) = &r.schema {
            check_identifier(schema).map_err(invalid("schema"))?;
        }
        for (key, value) in &r.labels {
            // The rule's sentence names the label.
            check_label(key, value).map_err(invalid(""))?;
        }
        // Parsed as the driver parses it: no password (the control store would keep it in
        // clear), only allow-listed parameters, a server among the fleet's allowed_hosts or
        // a file inside its sqlite_root (config/dsn.rs; issue 25, findings 2, 4, 6, 19).
        let refused = |source| EngineError::Registration {
            fleet: r.fleet.clone(),
            tenant: r.tenant.clone(),
            source: Box::new(source),
        };
        let target = fleet
            .registration
            .check(fleet.dialect, &r.dsn, r.schema.as_deref())
            .map_err(refused)?;
        // The fleet's password is offered only to a server that authenticates with SCRAM
        // (finding 2; config/scram.rs says why sqlx cannot be asked to refuse it).
        if fleet.dialect == crate::model::DialectKind::Postgres && fleet.registration.require_scram
        {
            crate::config::require_scram(&r.dsn)
                .await
                .map_err(refused)?;
        }
        // No fleet's tenant is reached through another fleet (finding 5).
        for other in self.registry.fleets().filter(|f| f.name != fleet.name) {
            if let Some(t) = other
                .tenants()
                .iter()
                .find(|t| t.target().is_some_and(|k| k.overlaps(&target)))
            {
                return Err(EngineError::DatabaseTaken {
                    fleet: r.fleet.clone(),
                    tenant: r.tenant.clone(),
                    other: t.id.clone(),
                    other_fleet: other.name.clone(),
                });
            }
        }
        let tenant = fleet
            .registered_tenant(&registered(&r))
            .map_err(|e| match e {
                FleetError::Target { .. } | FleetError::Dsn { .. } => {
                    EngineError::InvalidTarget(Box::new(e))
                }
                e => EngineError::Fleet(e),
            })?;
        // No read of the registrations lands between the store's write and the fleet's.
        let _sync = self.registry_sync.lock().await;
        if let Some(existing) = fleet.tenants().iter().find(|t| t.id == r.tenant) {
            return Err(duplicate(&r, existing).into());
        }
        let stored = RegisteredTenant {
            fleet: r.fleet.clone(),
            tenant: r.tenant.clone(),
            dsn: r.dsn.clone(),
            schema: r.schema.clone(),
            labels: r.labels.clone(),
        };
        if !self
            .runner
            .store()
            .register_tenant(&stored, &caller.who)
            .await?
        {
            return Err(FleetError::DuplicateTenant {
                fleet: r.fleet,
                tenant: r.tenant,
                existing: "API",
            }
            .into());
        }
        let info = info(&tenant);
        fleet.add(tenant)?;
        tracing::info!(fleet = %r.fleet, tenant = %r.tenant, caller = %caller.who, "tenant registered");
        Ok(info)
    }

    /// Removes a tenant registered through the API from its fleet and the store, with its
    /// last-known state; rollouts already running keep it.
    ///
    /// # Errors
    /// [`FleetError::UnknownFleet`] or [`FleetError::UnknownTenant`];
    /// [`FleetError::Configured`] for a tenant of the configuration file;
    /// [`EngineError::Store`] when the store refuses the write.
    pub async fn deregister_tenant(
        &self,
        fleet: &str,
        tenant: &str,
        caller: &Caller,
    ) -> Result<(), EngineError> {
        let f = self.registry.fleet(fleet)?;
        let _sync = self.registry_sync.lock().await;
        if f.tenant(tenant)?.source == TenantSource::Config {
            return Err(FleetError::Configured {
                fleet: fleet.to_owned(),
                tenant: tenant.to_owned(),
            }
            .into());
        }
        self.runner
            .store()
            .deregister_tenant(fleet, tenant, &caller.who)
            .await?;
        f.remove(tenant)?;
        tracing::info!(fleet, tenant, caller = %caller.who, "tenant deregistered");
        Ok(())
    }

    /// One tenant of `fleet`, whatever its source.
    ///
    /// # Errors
    /// [`FleetError::UnknownFleet`] or [`FleetError::UnknownTenant`].
    pub fn tenant(&self, fleet: &str, tenant: &str) -> Result<TenantInfo, EngineError> {
        let t = self.registry.fleet(fleet)?.tenant(tenant)?;
        Ok(info(&t))
    }
}

/// What the API shows of a tenant (never its DSN), without its state.
pub(super) fn info(t: &Tenant) -> TenantInfo {
    TenantInfo {
        id: t.id.clone(),
        labels: t.labels.to_map(),
        schema: t.schema.clone(),
        source: t.source,
        state: None,
    }
}

/// `ListTenants`: the tenants of `fleet` that `selector` picks, each with its last-known
/// state classified against the current set ([`crate::model::KnownState::classify`], as
/// `Status` does); without a state when the set does not load.
pub(super) async fn list(
    registry: &Registry,
    store: &Store,
    fleet: &str,
    selector: &crate::engine::Selector,
) -> Result<Vec<TenantInfo>, EngineError> {
    let fleet = registry.fleet(fleet)?;
    let mut infos: Vec<TenantInfo> = fleet.select(selector)?.iter().map(|t| info(t)).collect();
    let Ok(set) = fleet.load_set() else {
        return Ok(infos);
    };
    let known: std::collections::HashMap<String, crate::model::KnownState> = store
        .known_states(&fleet.name)
        .await?
        .into_iter()
        .map(|k| (k.tenant.clone(), k))
        .collect();
    for i in &mut infos {
        i.state = Some(crate::model::classify(known.get(&i.id), &set));
    }
    Ok(infos)
}

/// The registration `r` as the fleets keep it.
fn registered(r: &Registration) -> Registered {
    Registered {
        id: r.tenant.clone(),
        dsn: r.dsn.clone(),
        schema: r.schema.clone(),
        labels: r.labels.clone(),
    }
}

/// How often a replica looks for registrations made through another one: a registration or
/// deregistration through any replica is seen by every replica within this and one read.
pub const REGISTRY_POLL: Duration = Duration::from_secs(1);

/// The registrations are read whole at least this often, even when their generation did
/// not move (a replica of an older release does not count its changes).
const REGISTRY_FULL_READ: Duration = Duration::from_secs(30);

/// What a replica remembers of its last read of the registrations.
#[derive(Default)]
pub(super) struct RegistrySync {
    /// The store's generation then; `None` before the first read.
    generation: Option<i64>,
    /// When the list was last read whole.
    read_at: Option<std::time::Instant>,
    /// Registrations left out then, said once each.
    rejected: BTreeSet<(String, String)>,
}

/// Makes every fleet's registered tenants those the control store lists, when its
/// generation moved since `sync`'s last read (or always, with `whole`). A registration
/// whose fleet is no longer configured, whose id a configured or discovered tenant has, or
/// whose DSN no longer fits is reported (once) and left out (and left in the store), never
/// merged silently.
///
/// # Errors
/// [`StoreError`] when the store cannot be read; the fleets keep what they had.
pub(super) async fn sync_registered(
    registry: &Registry,
    store: &Store,
    sync: &mut RegistrySync,
    whole: bool,
) -> Result<(), StoreError> {
    let generation = store.registry_generation().await?;
    let stale = sync
        .read_at
        .is_none_or(|at| at.elapsed() >= REGISTRY_FULL_READ);
    if !whole && !stale && sync.generation == Some(generation) {
        return Ok(());
    }
    let mut by_fleet: BTreeMap<String, Vec<Registered>> = BTreeMap::new();
    for stored in store.registered_tenants().await? {
        by_fleet.entry(stored.fleet).or_default().push(Registered {
            id: stored.tenant,
            dsn: stored.dsn,
            schema: stored.schema,
            labels: stored.labels,
        });
    }
    let mut rejected = BTreeSet::new();
    for (name, rows) in &by_fleet {
        if let Err(e) = registry.fleet(name) {
            for r in rows {
                if !sync.rejected.contains(&(name.clone(), r.id.clone())) {
                    left_out(name, &r.id, &e);
                }
                rejected.insert((name.clone(), r.id.clone()));
            }
        }
    }
    for fleet in registry.fleets() {
        let rows = by_fleet.get(&fleet.name).map_or(&[][..], Vec::as_slice);
        let change = fleet.apply_registered(rows);
        for (id, e) in &change.rejected {
            if !sync.rejected.contains(&(fleet.name.clone(), id.clone())) {
                left_out(&fleet.name, id, e);
            }
            rejected.insert((fleet.name.clone(), id.clone()));
        }
        if !change.is_empty() && sync.generation.is_some() {
            tracing::info!(
                fleet = %fleet.name,
                added = ?change.added,
                removed = ?change.removed,
                changed = ?change.changed,
                "registered tenants read from the control store"
            );
        }
    }
    sync.generation = Some(generation);
    sync.read_at = Some(std::time::Instant::now());
    sync.rejected = rejected;
    Ok(())
}

fn left_out(fleet: &str, tenant: &str, e: &FleetError) {
    tracing::error!(
        fleet = %fleet,
        tenant = %tenant,
        "a tenant registered through the API is left out: {e}"
    );
}

impl Engine {
    /// Until `stop`: every [`REGISTRY_POLL`] (and at once when a rollout meets a tenant it
    /// does not know), reads the registered tenants from the control store when they
    /// changed, so a registration or deregistration through any replica reaches this one
    /// within two seconds. A failed read is logged (once per outage) and retried.
    pub async fn refresh_registry(&self, stop: CancellationToken) {
        let mut failing = false;
        loop {
            let wanted = tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REGISTRY_POLL) => false,
                () = self.registry.refresh_wanted() => true,
            };
            let read = {
                let mut sync = self.registry_sync.lock().await;
                sync_registered(&self.registry, self.runner.store(), &mut sync, wanted).await
            };
            match read {
                Ok(()) => {
                    failing = false;
                    self.registry.refreshed();
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("reading the registered tenants: {e}; retrying");
                }
                Err(_) => {}
            }
        }
    }
}

fn duplicate(r: &Registration, existing: &Tenant) -> FleetError {
    FleetError::DuplicateTenant {
        fleet: r.fleet.clone(),
        tenant: r.tenant.clone(),
        existing: existing.source.origin(),
    }
}

impl Engine {
    /// Runs `fleet`'s discovery query now and makes its discovered tenants what it returns.
    ///
    /// # Errors
    /// [`FleetError::UnknownFleet`]; [`EngineError::NoDiscovery`] for a fleet
    /// without discovery; [`EngineError::Discovery`] when the catalog cannot be read (the
    /// fleet keeps the tenants it had).
    pub async fn refresh_tenants(&self, fleet: &str) -> Result<DiscoveryReport, EngineError> {
        let f = self.registry.fleet(fleet)?;
        let Some(cfg) = &f.discovery else {
            return Err(EngineError::NoDiscovery(fleet.to_owned()));
        };
        let found = discover(fleet, cfg).await?;
        let report = f.apply_discovery(found);
        log_report(fleet, &report);
        Ok(report)
    }

    /// Refreshes every fleet with a discovery query at its `refresh` interval, until `stop`
    /// is cancelled; a failed read is logged and the fleet keeps its tenants.
    pub async fn refresh_discovered(&self, stop: CancellationToken) {
        let fleets: Vec<_> = self
            .registry
            .fleets()
            .filter_map(|f| f.discovery.as_ref().map(|d| (f.name.clone(), d.refresh)))
            .collect();
        let loops = fleets.into_iter().map(|(name, every)| {
            let stop = stop.clone();
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    if let Err(e) = self.refresh_tenants(&name).await {
                        tracing::error!("{e}");
                    }
                }
            }
        });
        futures::future::join_all(loops).await;
    }
}

/// Reads every fleet's discovery query once, at start; a catalog that cannot be read is
/// logged and its fleet starts with its other tenants.
pub(super) async fn discover_all(registry: &Registry) {
    for fleet in registry.fleets() {
        let Some(cfg) = &fleet.discovery else {
            continue;
        };
        match discover(&fleet.name, cfg).await {
            Ok(found) => log_report(&fleet.name, &fleet.apply_discovery(found)),
            Err(e) => tracing::error!("{e}; the fleet starts without its discovered tenants"),
        }
    }
}

fn log_report(fleet: &str, r: &DiscoveryReport) {
    tracing::info!(
        fleet,
        found = r.found,
        added = r.added.len(),
        removed = r.removed.len(),
        changed = r.changed.len(),
        rejected = r.rejected.len(),
        "discovery query read"
    );
    for why in &r.rejected {
        tracing::error!(fleet, "a discovered tenant is left out: {why}");
    }
}
