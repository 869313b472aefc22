//! The registry: every configured fleet, built from the configuration, and the connection
//! budget they share.

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::{Fleet, FleetError, NewTenant, Shared, TenantSource, budget::Budget, pool};
use crate::{catalog, config::Config};

/// Every configured fleet, and the connection budget they share.
pub struct Registry {
    fleets: BTreeMap<String, Arc<Fleet>>,
    budget: Arc<Budget>,
    idle_timeout: Duration,
    /// Stored as `applied_by` in history rows.
    pub(crate) instance_id: String,
    /// Reads of the registered tenants from the control store, counted.
    pub(super) refreshes: tokio::sync::watch::Sender<u64>,
    /// A refresh loop runs (it has read once).
    pub(super) refreshing: std::sync::atomic::AtomicBool,
    /// Someone waits for a read now.
    pub(super) refresh_wanted: tokio::sync::Notify,
}

impl Registry {
    /// Builds fleets and tenant handles from configuration and loads every migration set.
    /// A set that does not load leaves its fleet broken ([`Fleet::broken`]), logged, while
    /// the others are served. Nothing connects yet.
    ///
    /// # Errors
    /// [`FleetError::Dsn`] for a tenant without a DSN; [`FleetError::Target`] for an
    /// unusable DSN or schema; [`FleetError::SessionInit`].
    pub fn from_config(config: &Config) -> Result<Self, FleetError> {
        let budget = Arc::new(Budget::new(
            config.max_connections,
            config.max_connections_per_host,
            config.max_lock_waiters_per_host,
        ));
        let mut fleets = BTreeMap::new();
        for (name, fc) in &config.fleets {
            for (index, stmt) in fc.session_init.iter().enumerate() {
                let found =
                    catalog::parse_script(stmt, fc.dialect).map_or(0, |s| s.statement_count());
                if found != 1 {
                    return Err(FleetError::SessionInit {
                        fleet: name.clone(),
                        index,
                        found,
                    });
                }
            }
            let history_table = fc
                .history_table
                .clone()
                .unwrap_or_else(|| config.history_table.clone());
            let fleet = Fleet {
                name: name.clone(),
                dialect: fc.dialect,
                migrations: fc.migrations.clone(),
                format: fc.format,
                concurrency: fc.concurrency,
                lock_timeout: fc.lock_timeout,
                guard: crate::model::LockGuard {
                    lock_timeout: fc.ddl_lock_timeout,
                    retry_for: fc.ddl_retry_for,
                    statement_timeout: fc.statement_timeout,
                },
                lint: fc.lint_policy(),
                transaction: fc.transaction,
                // Checked when the configuration loaded.
                strategy: fc.strategy.resolve(fc.concurrency).unwrap_or_default(),
                tenants: RwLock::default(),
                discovery: fc.discovery.clone(),
                vars: fc.vars.clone(),
                shared: Shared {
                    password: fc.password_source(),
                    history_table,
                    session_init: fc.session_init.clone(),
                    connect_timeout: fc.connect_timeout,
                    text_versions: catalog::resolve_format(fc.format, &fc.migrations)
                        == crate::model::SetFormat::Flyway,
                    budget: budget.clone(),
                    pools: pool::SharedPools::default(),
                },
                set: catalog::SetCache::default(),
                published: Default::default(),
                broken: std::sync::Mutex::default(),
                metrics_tenant_labels: fc.metrics_tenant_labels,
                backup: fc.backup.clone(),
                census_on_apply: fc.census_on_apply,
                registration: fc
                    .registration_policy(&config.control_store)
                    .map_err(|source| FleetError::Policy {
                        fleet: name.clone(),
                        source,
                    })?,
            };
            let tenants = fc
                .tenants
                .iter()
                .map(|tc| {
                    let dsn = fc.tenant_dsn(tc).map_err(|source| FleetError::Dsn {
                        fleet: name.clone(),
                        tenant: tc.id.clone(),
                        source,
                    })?;
                    fleet.new_tenant(NewTenant {
                        id: &tc.id,
                        dsn: &dsn,
                        schema: tc.schema.as_deref(),
                        labels: &tc.labels,
                        source: TenantSource::Config,
                    })
                })
                .collect::<Result<Vec<_>, FleetError>>()?;
            *fleet
                .tenants
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(tenants);
            // A set that does not load makes its fleet broken (said in the log and to every
            // caller), not the daemon: its other fleets are served.
            let _ = fleet.load_set();
            fleets.insert(name.clone(), Arc::new(fleet));
        }
        Ok(Self {
            fleets,
            budget,
            idle_timeout: config.idle_timeout,
            instance_id: config.instance_id.clone(),
            refreshes: tokio::sync::watch::Sender::new(0),
            refreshing: std::sync::atomic::AtomicBool::new(false),
            refresh_wanted: tokio::sync::Notify::new(),
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

    /// Closes pooled sessions idle for longer than `idle_timeout`, every quarter of it,
    /// until `stop` is cancelled.
    pub(crate) async fn close_idle_sessions(&self, stop: CancellationToken) {
        let every = (self.idle_timeout / 4).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let closed = self.budget.close_idle(self.idle_timeout).await;
            if closed > 0 {
                tracing::debug!(closed, "closed idle tenant sessions");
            }
        }
    }

    /// The connection budget's use now.
    pub(crate) fn budget_use(&self) -> crate::model::BudgetUse {
        self.budget.usage()
    }

    /// Cancels, on their servers, the migrations in flight (at the end of the shutdown
    /// grace); returns how many cancels were sent and how many could not be.
    pub(crate) async fn cancel_in_flight(&self) -> (usize, usize) {
        self.budget.in_flight.cancel_all().await
    }

    /// Closes every idle pooled session (at shutdown).
    pub(crate) async fn close_all_idle(&self) {
        self.budget.close_idle(Duration::ZERO).await;
    }
}
