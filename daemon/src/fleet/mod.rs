//! Fleets and tenants: the registry built from configuration, selectors, and the global
//! connection budget.

mod selector;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

pub use selector::{LabelSelector, SelectorError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    catalog::{self, CatalogError},
    config::Config,
    dialect::{self, Database, DbError, Target},
    model::{DialectKind, MigrationSet},
};

/// One tenant database (or schema).
pub struct Tenant {
    /// Unique within its fleet.
    pub id: String,
    /// Labels matched by selectors.
    pub labels: BTreeMap<String, String>,
    /// PostgreSQL schema for schema-per-tenant fleets.
    pub schema: Option<String>,
    /// Its database; connects lazily.
    pub db: Box<dyn Database>,
}

/// A named group of tenants sharing a dialect and a migration set.
pub struct Fleet {
    /// The fleet's name.
    pub name: String,
    /// Its dialect.
    pub dialect: DialectKind,
    /// Directory of its migration set, read on every request so new files need no restart.
    pub migrations: PathBuf,
    /// Default number of tenants migrated at once.
    pub concurrency: usize,
    /// Longest wait for a tenant's lock.
    pub lock_timeout: Duration,
    /// Tenants in configuration order.
    pub tenants: Vec<Arc<Tenant>>,
}

/// Chooses tenants: explicit ids and a label selector, both optional.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Tenant ids; empty means every tenant.
    pub ids: Vec<String>,
    /// Label requirements; empty matches everything.
    pub labels: LabelSelector,
}

/// Why fleets could not be built or a request's fleet or tenants could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No fleet has that name.
    #[error("fleet {0:?} not found")]
    UnknownFleet(String),
    /// A selected id is not a tenant of the fleet.
    #[error("fleet {fleet:?} has no tenant {tenant:?}")]
    UnknownTenant {
        /// The fleet.
        fleet: String,
        /// The id.
        tenant: String,
    },
    /// A tenant's target is unusable (bad DSN, schema on a dialect without schemas).
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Target {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// Why.
        source: DbError,
    },
    /// The fleet's migration set does not load.
    #[error("fleet {fleet:?}: migration set: {source}")]
    Catalog {
        /// The fleet.
        fleet: String,
        /// Why, naming the file.
        source: CatalogError,
    },
}

impl Fleet {
    /// Reads and checks the fleet's migration set.
    ///
    /// # Errors
    /// [`FleetError::Catalog`] naming the file that does not load.
    pub fn load_set(&self) -> Result<MigrationSet, FleetError> {
        catalog::load_dir(&self.migrations, self.dialect).map_err(|source| FleetError::Catalog {
            fleet: self.name.clone(),
            source,
        })
    }

    /// The tenants a selector picks, in configuration order.
    ///
    /// # Errors
    /// [`FleetError::UnknownTenant`] for an id the fleet does not have.
    pub fn select(&self, selector: &Selector) -> Result<Vec<Arc<Tenant>>, FleetError> {
        if let Some(missing) = selector
            .ids
            .iter()
            .find(|id| !self.tenants.iter().any(|t| &t.id == *id))
        {
            return Err(FleetError::UnknownTenant {
                fleet: self.name.clone(),
                tenant: missing.clone(),
            });
        }
        Ok(self
            .tenants
            .iter()
            .filter(|t| selector.ids.is_empty() || selector.ids.contains(&t.id))
            .filter(|t| selector.labels.matches(&t.labels))
            .cloned()
            .collect())
    }
}

/// Every configured fleet, and the connection budget they share.
pub struct Registry {
    fleets: BTreeMap<String, Arc<Fleet>>,
    /// Permits = `max_connections`; each open engine connection holds one.
    budget: Arc<Semaphore>,
    /// Stored as `applied_by` in history rows.
    pub instance_id: String,
}

impl Registry {
    /// Builds fleets and tenant handles from configuration and checks that every migration
    /// set loads. Nothing connects yet.
    ///
    /// # Errors
    /// [`FleetError::Target`] for an unusable DSN or schema; [`FleetError::Catalog`] for a
    /// migration set that does not load.
    pub fn from_config(config: &Config) -> Result<Self, FleetError> {
        let mut fleets = BTreeMap::new();
        for (name, fc) in &config.fleets {
            let history_table = fc
                .history_table
                .clone()
                .unwrap_or_else(|| config.history_table.clone());
            let tenants = fc
                .tenants
                .iter()
                .map(|tc| {
                    let target = Target {
                        dsn: tc.dsn.clone(),
                        schema: tc.schema.clone(),
                        history_table: history_table.clone(),
                        session_init: fc.session_init.clone(),
                        connect_timeout: fc.connect_timeout,
                    };
                    let db =
                        dialect::open(fc.dialect, target).map_err(|source| FleetError::Target {
                            fleet: name.clone(),
                            tenant: tc.id.clone(),
                            source,
                        })?;
                    Ok(Arc::new(Tenant {
                        id: tc.id.clone(),
                        labels: tc.labels.clone(),
                        schema: tc.schema.clone(),
                        db,
                    }))
                })
                .collect::<Result<_, FleetError>>()?;
            let fleet = Fleet {
                name: name.clone(),
                dialect: fc.dialect,
                migrations: fc.migrations.clone(),
                concurrency: fc.concurrency,
                lock_timeout: fc.lock_timeout,
                tenants,
            };
            fleet.load_set()?;
            fleets.insert(name.clone(), Arc::new(fleet));
        }
        Ok(Self {
            fleets,
            budget: Arc::new(Semaphore::new(config.max_connections)),
            instance_id: config.instance_id.clone(),
        })
    }

    /// The fleet named `name`.
    ///
    /// # Errors
    /// [`FleetError::UnknownFleet`].
    pub fn fleet(&self, name: &str) -> Result<&Arc<Fleet>, FleetError> {
        self.fleets
            .get(name)
            .ok_or_else(|| FleetError::UnknownFleet(name.to_owned()))
    }

    /// All fleets by name.
    pub fn fleets(&self) -> impl Iterator<Item = &Arc<Fleet>> {
        self.fleets.values()
    }

    /// Waits for `n` connections' worth of the global budget; the permit returns them on drop.
    pub async fn connections(&self, n: u32) -> OwnedSemaphorePermit {
        self.budget
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget semaphore is never closed")
    }
}
