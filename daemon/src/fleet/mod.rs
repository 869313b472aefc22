//! Fleets and tenants: the registry built from configuration, selectors, and each tenant's
//! pool of sessions under the daemon's connection budget.
//!
//! | file | what |
//! | --- | --- |
//! | `error.rs` | [`FleetError`]: a fleet or tenant that cannot be built or resolved |
//! | `selector.rs` | Kubernetes-style label selectors |
//! | `budget.rs` | `max_connections` and `max_connections_per_host`: admission and open counts |
//! | `pool.rs` | one deadpool pool per tenant, and the sessions it lends |
//! | `registered.rs` | tenants registered through the API, as the control store lists them |
//! | `registry.rs` | [`Registry`]: every fleet, built from the configuration |
//! | `discovery.rs` | tenants found by a query against a catalog database |
//! | `inflight.rs` | migrations running on their servers, cancelled there at the end of the shutdown grace |
//! | `health.rs` | the fleet's set, loaded or broken; a broken fleet is said once per change |
//! | `waiters.rs` | `max_lock_waiters_per_host`: tenants of one server retrying a lock at once |
//! | `schema.rs` | a tenant's history and schema read on one session, for a census |
//! | `reads.rs` | many tenants' histories at once; a shared pool's schema tenants in one query |

mod budget;
mod discovery;
mod error;
mod health;
mod inflight;
mod pool;
mod published;
mod reads;
mod registered;
mod registry;
mod schema;
mod selector;
mod waiters;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

pub(crate) use crate::catalog::path_refusal;
pub(crate) use budget::Ticket;
pub(crate) use discovery::discover;
pub use discovery::{DiscoveryError, DiscoveryReport};
pub use error::FleetError;
pub(crate) use inflight::Flight;
pub(crate) use pool::PooledSession;
pub use published::SetError;
pub(crate) use published::{SetFile, SetRef, load_published, tag_refusal};
pub(crate) use reads::read_histories;
pub(crate) use registered::Registered;
pub use registry::Registry;
pub use selector::{LabelSelector, SelectorError};

use budget::Budget;
use pool::PoolSlot;

use crate::{
    catalog,
    dialect::{self, Database, DbError, Target, connection_lost},
    model::{DialectKind, HistoryRecord, Labels, Strategy, TransactionMode},
};

/// Where a tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSource {
    /// The configuration file (a static entry, its DSN given or from the fleet's template).
    Config,
    /// `Fleet.RegisterTenant`, kept in the control store.
    Api,
    /// The fleet's discovery query.
    Discovery,
}

impl TenantSource {
    /// Where a tenant of this source comes from, for messages: `configuration`, `API` or
    /// `discovery query`.
    pub fn origin(self) -> &'static str {
        match self {
            Self::Config => "configuration",
            Self::Api => "API",
            Self::Discovery => "discovery query",
        }
    }

    /// `config` or `api`, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
            Self::Discovery => "discovery",
        }
    }
}

/// One tenant database (or schema).
pub struct Tenant {
    /// Unique within its fleet.
    pub id: String,
    /// Where it comes from.
    pub source: TenantSource,
    /// Labels matched by selectors.
    pub labels: Labels,
    /// PostgreSQL schema for schema-per-tenant fleets.
    pub schema: Option<String>,
    /// Its database; connects lazily.
    db: Arc<dyn Database>,
    /// Its pool (its own, or its database's when schema tenants share one), created on
    /// first use.
    pool: Arc<PoolSlot>,
    /// The row that made it, for a discovered tenant (to tell a changed row).
    discovered: Option<Box<discovery::Discovered>>,
    /// The registration that made it, for a tenant registered through the API.
    registered: Option<Box<Registered>>,
    budget: Arc<Budget>,
    /// The database file, or server, database and schema it is (no secret).
    target: Option<crate::config::TargetKey>,
}

impl Tenant {
    /// Waits until this tenant may use `n` connections at once within the budget. Take
    /// the ticket before any session and hold it until they are all returned.
    pub(crate) async fn admit(&self, n: u32) -> Ticket {
        self.budget.admit(self.db.host().as_deref(), n).await
    }

    /// A session from this tenant's pool, opened within the budget if none is idle. Hold
    /// a [`Tenant::admit`] ticket for it.
    ///
    /// # Errors
    /// The connection error when a new session cannot be opened.
    pub(crate) async fn session(&self) -> Result<PooledSession, DbError> {
        let pool = self.pool.get(&self.budget);
        let mut session = PooledSession::get(pool, &self.budget).await?;
        if self.pool.shared
            && let Err(e) = self.db.bind(session.session()).await
        {
            session.close().await;
            return Err(e);
        }
        Ok(session)
    }

    /// The tenant's history in one round trip on a pooled session (an empty history when the
    /// table does not exist yet), within a ticket of its own. Creates nothing: a SQLite file
    /// that its first write will create is read as empty without opening it. A pooled
    /// session that turns out to be broken is replaced once.
    ///
    /// # Errors
    /// The connection error when the tenant is unreachable; [`DbError::Query`] when the
    /// read fails.
    pub(crate) async fn read_history(&self) -> Result<Vec<HistoryRecord>, DbError> {
        if self.db.not_created() {
            return Ok(Vec::new());
        }
        let _ticket = self.admit(1).await;
        let mut retried = false;
        loop {
            let mut session = self.session().await?;
            match session.session().read_history().await {
                Ok(history) => return Ok(history.records().unwrap_or_default()),
                Err(DbError::Query { source, .. }) if !retried && connection_lost(&source) => {
                    session.close().await;
                    retried = true;
                }
                Err(e) => {
                    session.close().await;
                    return Err(e);
                }
            }
        }
    }

    /// The `host:port` of the tenant's server; `None` for SQLite files.
    pub(crate) fn host(&self) -> Option<String> {
        self.db.host()
    }

    /// `db.namespace` for its spans: the database (and schema) name, no credentials.
    pub(crate) fn namespace(&self) -> Option<String> {
        self.db.namespace()
    }

    /// The database file, or server, database and schema, the tenant is; `None` when its
    /// DSN does not say.
    pub(crate) fn target(&self) -> Option<&crate::config::TargetKey> {
        self.target.as_ref()
    }

    /// Where the tenant is, its DSN included (secret: never logged), for the database's own
    /// tools; `None` only for the engine's fake databases.
    pub(crate) fn dump_target(&self) -> Option<&Target> {
        self.db.target()
    }

    /// What the tenant's database can do.
    pub(crate) fn caps(&self) -> crate::model::Capabilities {
        self.db.kind().caps()
    }

    /// Enters this tenant's migrations into the daemon's in-flight list for as long as the
    /// returned [`Flight`] lives ([`Registry::cancel_in_flight`]).
    pub(crate) fn in_flight(&self) -> Flight {
        self.budget.in_flight.enter(&self.id, self.db.clone())
    }

    /// Waits until this tenant may retry a migration whose statement gave up waiting for a
    /// lock, within its server's `max_lock_waiters_per_host`; the retry lasts while the
    /// permit is held. `None` for a SQLite file, which has no server to spare.
    pub(crate) async fn lock_waiter(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let host = self.db.host()?;
        Some(self.budget.lock_waiters.enter(&host).await)
    }
}

#[cfg(test)]
impl Tenant {
    /// Tenants on `dbs` sharing one budget (64 connections, `lock_waiters` retrying per
    /// server), for the engine's unit tests.
    pub(crate) fn for_test(
        dbs: Vec<(&str, Arc<dyn Database>)>,
        lock_waiters: usize,
    ) -> Vec<Arc<Self>> {
        let budget = Arc::new(Budget::new(64, 64, lock_waiters));
        dbs.into_iter()
            .map(|(id, db)| {
                Arc::new(Self {
                    id: id.to_owned(),
                    source: TenantSource::Config,
                    labels: Labels::default(),
                    schema: None,
                    pool: PoolSlot::own(db.clone()),
                    db,
                    discovered: None,
                    registered: None,
                    budget: budget.clone(),
                    target: None,
                })
            })
            .collect()
    }
}

/// A named group of tenants sharing a dialect and a migration set.
pub struct Fleet {
    /// The fleet's name.
    pub name: String,
    /// Its dialect.
    pub dialect: DialectKind,
    /// Directory of its migration set.
    pub migrations: PathBuf,
    /// The set's on-disk layout (`format` in the fleet's configuration; detected by default).
    pub format: crate::model::SetFormat,
    /// Default number of tenants migrated at once.
    pub concurrency: usize,
    /// Longest wait for a tenant's lock.
    pub lock_timeout: Duration,
    /// How long each migration statement may wait for a lock and run, and how long a
    /// lock-timed-out migration keeps retrying (DESIGN.md rule 7).
    pub guard: crate::model::LockGuard,
    /// What the fleet makes of each lint code (`[fleets.NAME.lint]`).
    pub lint: crate::model::LintPolicy,
    /// How a tenant's migrations are grouped into transactions by default.
    pub transaction: TransactionMode,
    /// The default strategy of its rollouts.
    pub strategy: Strategy,
    /// Tenants in configuration order, then registered ones in the order they came; replaced
    /// whole when a tenant is added or removed, so a reader's snapshot never changes.
    tenants: RwLock<Arc<Vec<Arc<Tenant>>>>,
    /// What every tenant of the fleet shares, for tenants added after start.
    shared: Shared,
    /// Its discovery query, if it has one.
    pub discovery: Option<crate::config::DiscoveryConfig>,
    /// Its `[fleets.NAME.vars]` placeholder values.
    pub vars: std::collections::BTreeMap<String, String>,
    /// The set, loaded once and again only when the directory changes.
    set: catalog::SetCache,
    /// Published sets parsed here, and the one the fleet follows (`published:TAG`).
    published: published::Published,
    /// Why the set did not load when last read (`None` while it loads): the fleet is broken.
    broken: std::sync::Mutex<Option<String>>,
    /// Tenant ids as a label of its migration and lock metrics (small fleets only).
    pub metrics_tenant_labels: bool,
    /// Read a tenant's schema after its apply or rollback succeeds, and keep its
    /// fingerprint as the version's expected one (`census_on_apply`).
    pub census_on_apply: bool,
    /// What a DSN registered through the API may point at.
    pub registration: crate::config::RegistrationPolicy,
    /// Its backup policy (`[fleets.NAME.backup]`).
    pub backup: crate::config::BackupConfig,
}

/// What the tenants of one fleet share.
struct Shared {
    /// The fleet's password source, for tenants registered or discovered without one.
    password: crate::config::PasswordSource,
    history_table: String,
    session_init: Vec<String>,
    connect_timeout: Duration,
    /// The set is in Flyway's layout, so the history table's versions are text.
    text_versions: bool,
    budget: Arc<Budget>,
    /// The pools schema tenants share, by DSN (secret, kept in memory only).
    pools: pool::SharedPools,
}

/// A tenant to add to a fleet: what `Fleet.RegisterTenant` (or the configuration) gives.
pub struct NewTenant<'a> {
    /// Its id, already validated.
    pub id: &'a str,
    /// Its DSN. Secret.
    pub dsn: &'a str,
    /// PostgreSQL schema for schema-per-tenant fleets.
    pub schema: Option<&'a str>,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Where it comes from.
    pub source: TenantSource,
}

/// Chooses tenants: explicit ids and a label selector, both optional.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Tenant ids; empty means every tenant.
    pub ids: Vec<String>,
    /// Label requirements; empty matches everything.
    pub labels: LabelSelector,
}

impl Fleet {
    /// Every tenant now: configured ones in configuration order, then registered ones.
    pub fn tenants(&self) -> Arc<Vec<Arc<Tenant>>> {
        // A poisoned lock only means a writer panicked; the list it guards is whole.
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The tenant `id`.
    ///
    /// # Errors
    /// [`FleetError::UnknownTenant`].
    pub fn tenant(&self, id: &str) -> Result<Arc<Tenant>, FleetError> {
        self.tenants()
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| FleetError::UnknownTenant {
                fleet: self.name.clone(),
                tenant: id.to_owned(),
            })
    }

    /// A tenant handle of this fleet, not yet added. Nothing connects.
    ///
    /// # Errors
    /// [`FleetError::Target`] for a DSN of another dialect or that does not parse, or a
    /// schema on a dialect without schemas.
    pub fn new_tenant(&self, t: NewTenant<'_>) -> Result<Arc<Tenant>, FleetError> {
        let dsn = match t.source {
            TenantSource::Config => t.dsn.to_owned(),
            TenantSource::Api | TenantSource::Discovery => {
                crate::config::fill_password(t.dsn, &self.shared.password).map_err(|source| {
                    FleetError::Dsn {
                        fleet: self.name.clone(),
                        tenant: t.id.to_owned(),
                        source,
                    }
                })?
            }
        };
        let target = Target {
            dsn,
            schema: t.schema.map(str::to_owned),
            history_table: self.shared.history_table.clone(),
            session_init: self.shared.session_init.clone(),
            connect_timeout: self.shared.connect_timeout,
            text_versions: self.shared.text_versions,
        };
        let unusable = |source| FleetError::Target {
            fleet: self.name.clone(),
            tenant: t.id.to_owned(),
            source,
        };
        // The schema tenants of one database share its sessions, each bound on checkout.
        let shared = (self.dialect.caps().schemas && target.schema.is_some()).then(|| Target {
            schema: None,
            ..target.clone()
        });
        let db: Arc<dyn Database> =
            Arc::from(dialect::open(self.dialect, target).map_err(unusable)?);
        let pool = match shared {
            Some(base) => self
                .shared
                .pools
                .get(base, self.dialect)
                .map_err(unusable)?,
            None => PoolSlot::own(db.clone()),
        };
        Ok(Arc::new(Tenant {
            id: t.id.to_owned(),
            source: t.source,
            labels: Labels::from(t.labels),
            schema: t.schema.map(str::to_owned),
            db,
            pool,
            discovered: None,
            registered: None,
            budget: self.shared.budget.clone(),
            target: crate::config::TargetKey::of(self.dialect, t.dsn, t.schema),
        }))
    }

    /// The placeholder values of `tenant`'s scripts: the fleet's vars, then the
    /// [`BUILTIN_PLACEHOLDERS`](crate::model::BUILTIN_PLACEHOLDERS) `tenant_id`, `schema`
    /// (empty when it has none) and `fleet`.
    pub fn placeholder_values(
        &self,
        tenant: &Tenant,
    ) -> std::collections::BTreeMap<String, String> {
        let mut vars = self.vars.clone();
        vars.insert("tenant_id".into(), tenant.id.clone());
        vars.insert("schema".into(), tenant.schema.clone().unwrap_or_default());
        vars.insert("fleet".into(), self.name.clone());
        vars
    }

    /// Adds `tenant` after the fleet's others.
    ///
    /// # Errors
    /// [`FleetError::DuplicateTenant`] when the fleet has its id already, from any source.
    pub fn add(&self, tenant: Arc<Tenant>) -> Result<(), FleetError> {
        let mut list = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = list.iter().find(|t| t.id == tenant.id) {
            return Err(FleetError::DuplicateTenant {
                fleet: self.name.clone(),
                tenant: tenant.id.clone(),
                existing: existing.source.origin(),
            });
        }
        let mut next = Vec::with_capacity(list.len() + 1);
        next.extend(list.iter().cloned());
        next.push(tenant);
        *list = Arc::new(next);
        Ok(())
    }

    /// Adds `tenants` after the fleet's others in one swap of the list (O(n), where adding
    /// them one by one copies the list each time); returns each one left out with why: its
    /// id is the fleet's already, from any source, or appears twice in `tenants`.
    pub fn add_all(&self, tenants: Vec<Arc<Tenant>>) -> Vec<(Arc<Tenant>, FleetError)> {
        let mut list = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::with_capacity(list.len() + tenants.len());
        next.extend(list.iter().cloned());
        let mut ids: std::collections::HashMap<String, TenantSource> =
            list.iter().map(|t| (t.id.clone(), t.source)).collect();
        let mut refused = Vec::new();
        for tenant in tenants {
            if let Some(existing) = ids.get(&tenant.id) {
                let e = FleetError::DuplicateTenant {
                    fleet: self.name.clone(),
                    tenant: tenant.id.clone(),
                    existing: existing.origin(),
                };
                refused.push((tenant, e));
                continue;
            }
            ids.insert(tenant.id.clone(), tenant.source);
            next.push(tenant);
        }
        *list = Arc::new(next);
        refused
    }

    /// Removes the registered tenant `id` and returns it; rollouts that hold it keep it.
    ///
    /// # Errors
    /// [`FleetError::UnknownTenant`]; [`FleetError::Configured`] for a tenant of the
    /// configuration file.
    pub fn remove(&self, id: &str) -> Result<Arc<Tenant>, FleetError> {
        let mut list = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let Some(i) = list.iter().position(|t| t.id == id) else {
            return Err(FleetError::UnknownTenant {
                fleet: self.name.clone(),
                tenant: id.to_owned(),
            });
        };
        if list[i].source == TenantSource::Config {
            return Err(FleetError::Configured {
                fleet: self.name.clone(),
                tenant: id.to_owned(),
            });
        }
        let mut next: Vec<Arc<Tenant>> = list.as_ref().clone();
        let removed = next.remove(i);
        *list = Arc::new(next);
        Ok(removed)
    }

    /// The tenants a selector picks, in the fleet's order.
    ///
    /// # Errors
    /// [`FleetError::UnknownTenant`] for an id the fleet does not have;
    /// [`FleetError::NoMatch`] when a label selector matches no tenant.
    pub fn select(&self, selector: &Selector) -> Result<Vec<Arc<Tenant>>, FleetError> {
        let tenants = self.tenants();
        // Ids are looked up in a set, each once: O(ids + tenants), never their product.
        if selector.ids.len() > tenants.len().max(1) {
            return Err(FleetError::TooManyIds {
                fleet: self.name.clone(),
                ids: selector.ids.len(),
                tenants: tenants.len(),
            });
        }
        let wanted: std::collections::HashSet<&str> =
            selector.ids.iter().map(String::as_str).collect();
        let known: std::collections::HashSet<&str> =
            tenants.iter().map(|t| t.id.as_str()).collect();
        if let Some(missing) = selector.ids.iter().find(|id| !known.contains(id.as_str())) {
            return Err(FleetError::UnknownTenant {
                fleet: self.name.clone(),
                tenant: missing.clone(),
            });
        }
        let selected: Vec<Arc<Tenant>> = tenants
            .iter()
            .filter(|t| wanted.is_empty() || wanted.contains(t.id.as_str()))
            .filter(|t| selector.labels.matches(&t.labels))
            .cloned()
            .collect();
        if selected.is_empty() && !selector.labels.is_empty() {
            return Err(FleetError::NoMatch {
                fleet: self.name.clone(),
                selector: selector.labels.to_string(),
            });
        }
        Ok(selected)
    }
}
