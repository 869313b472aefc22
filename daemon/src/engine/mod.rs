//! The engine facade: the daemon's operations — plan, apply, rollback, verify, status,
//! repair, and the rollouts' get, list, watch, pause, resume and cancel — on validated
//! domain requests, returning domain results or a stream of domain events. The API layer
//! converts wire messages and calls exactly one method here; everything about fleets,
//! sets, tenants, databases and the control store happens behind this facade.
//!
//! | file | what |
//! | --- | --- |
//! | `request.rs` | the requests ([`PlanRequest`], [`ApplyRequest`], …) and [`Page`] |
//! | `report.rs` | the answers ([`FleetPlan`], [`FleetStatus`], …) |
//! | `reads.rs` | Plan and Verify: concurrent history reads, one page at a time |
//! | `status.rs` | Status: last-known state, or a refresh with a per-tenant deadline |
//! | `census.rs` | Census: every selected tenant's schema fingerprinted, the fleet in drift classes |
//! | `rollouts.rs` | Apply, Rollback and the rollouts' control |
//! | `backups.rs` | backups: listed, read, taken on request, deleted, restored |
//! | `repair.rs` | Repair: one version's record rewritten on one tenant or many |
//! | `audit.rs` | a rollout's request as stored (a bounded summary), and retention |
//! | `queue.rs` | one changing rollout per fleet and direction at a time, one more waiting |
//! | `baseline.rs` | Baseline: versions recorded as applied without running them |
//! | `sets.rs` | migration sets published through the API, and the set a fleet or request names |
//! | `tenants.rs` | tenants registered through the API ([`Registration`]) |
//! | `observe.rs` | what a metrics scrape reports, and whether the engine is ready |
//! | `error.rs` | [`EngineError`]: one variant per refusal, each keeping its cause |
//! | `reason.rs` | each error's [`Reason`] (its stable code), [`ErrorKind`] and [`Subject`] |

mod audit;
mod backups;
mod baseline;
mod canary;
mod census;
mod error;
mod observe;
mod queue;
mod reads;
mod reason;
mod repair;
mod report;
mod request;
mod rollouts;
mod sets;
mod status;
mod tenants;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio_util::sync::CancellationToken;

pub use crate::fleet::DiscoveryReport;
pub use crate::fleet::SetError;
pub(crate) use crate::fleet::SetFile;
pub(crate) use crate::fleet::path_refusal;
pub use crate::model::RepairAction;
pub(crate) use crate::store::{StoredFile, StoredSet};
pub use backups::{DEFAULT_BACKUPS, MAX_BACKUPS, RestoreOutcome};
pub use baseline::{BaselineOutcome, BaselineRequest};
pub use census::{CensusProgress, CensusRequest, DriftClass, FleetCensus};
pub use error::{EngineError, ErrorKind, Reason, StrategyError, Subject};
pub use repair::{RepairOutcome, RepairRequest, RepairTenants};
pub use report::{
    FleetInfo, FleetPlan, FleetStatus, FleetVerification, RolloutPage, TenantHistory, TenantInfo,
    TenantPlan, TenantSource, TenantStatus, TenantVerification, WaveInfo,
};
pub use request::{
    ApplyRequest, DEFAULT_PAGE, LabelSelector, ListRequest, MAX_CONCURRENCY, MAX_PAGE, Page,
    PlanRequest, ReadRequest, RollbackRequest, Selector, SelectorError, StatusRequest,
};
pub use rollouts::Caller;
pub(crate) use sets::PublishRequest;
pub use sets::SetLimits;
pub use tenants::{REGISTRY_POLL, Registration};

use crate::{
    fleet::{Fleet, Registry, Tenant},
    model::MigrationSet,
    rollout::{Replica, Runner},
    store::{Store, StoreError},
};

/// This daemon as one of the replicas sharing a control store.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Its id in the store, stable across restarts of the same daemon, e.g.
    /// `avocetd@pod-1/0.0.0.0:7400`: a restarted daemon takes back at once what it held.
    pub id: String,
    /// A tenant whose replica has not renewed its lease for this long (ms precision) is
    /// claimed by another replica; the heartbeat runs every third of it.
    pub lease_timeout: Duration,
}

/// The daemon's operations over one registry of fleets and one control store.
pub struct Engine {
    registry: Arc<Registry>,
    /// The last read of the registered tenants; held across a registration's store write
    /// and fleet change, so no read lands between them.
    registry_sync: tokio::sync::Mutex<tenants::RegistrySync>,
    runner: Arc<Runner>,
    shutdown: CancellationToken,
    /// Rollouts run here at once before Apply and Rollback answer `RESOURCE_EXHAUSTED`.
    max_running_rollouts: usize,
    /// Rollouts of one fleet run here at once ([`Engine::limit_per_fleet`]).
    max_per_fleet: usize,
    /// Longest `pause_between_waves` a rollout may ask for.
    max_pause: std::time::Duration,
    /// Rollouts started by one identity run here at once ([`Engine::limit_per_identity`]).
    max_per_identity: usize,
    /// Rollouts that change a fleet, one at a time per direction, one more waiting.
    lines: Arc<queue::Lines>,
    /// What a published set may hold.
    set_limits: SetLimits,
}

/// A fleet, its selected tenants and its migration set, as every operation starts.
struct Scope {
    fleet: Arc<Fleet>,
    tenants: Vec<Arc<Tenant>>,
    set: Arc<MigrationSet>,
}

impl Engine {
    /// An engine over `registry` and the control store at `control_store`, as replica
    /// `replica`: opens the store (bringing its schema up to date) and, unless other
    /// replicas are alive, marks the rollouts a stopped daemon left as interrupted.
    /// Cancelling `shutdown` refuses new rollouts and stops running ones starting tenants.
    /// Rollouts record their metrics with `meter`'s instruments.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be opened, migrated or read.
    pub async fn open(
        registry: Registry,
        control_store: &str,
        replica: ReplicaOptions,
        shutdown: CancellationToken,
        meter: &opentelemetry::metrics::Meter,
    ) -> Result<Self, StoreError> {
        let registry = Arc::new(registry);
        let store = Arc::new(Store::open(control_store).await?);
        let replica = Replica {
            id: replica.id,
            lease: replica.lease_timeout,
        };
        let runner = Arc::new(Runner::new(
            registry.clone(),
            store,
            replica,
            shutdown.clone(),
            meter,
        ));
        let interrupted = runner.recover().await?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "rollouts were interrupted by a daemon stop");
        }
        let mut sync = tenants::RegistrySync::default();
        tenants::sync_registered(&registry, runner.store(), &mut sync, true).await?;
        tenants::discover_all(&registry).await;
        let snapshots: Vec<_> = registry.fleets().map(|f| (f, f.tenants())).collect();
        let registered: HashMap<&str, HashSet<&str>> = snapshots
            .iter()
            .map(|(f, tenants)| {
                (
                    f.name.as_str(),
                    tenants.iter().map(|t| t.id.as_str()).collect(),
                )
            })
            .collect();
        let forgotten = runner.store().forget_unregistered(&registered).await?;
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                "last-known states of this configuration's tenants no longer configured deleted"
            );
        }
        let engine = Self {
            registry,
            registry_sync: tokio::sync::Mutex::new(sync),
            runner,
            shutdown,
            max_running_rollouts: usize::MAX,
            max_per_fleet: usize::MAX,
            max_pause: std::time::Duration::MAX,
            max_per_identity: usize::MAX,
            lines: Arc::default(),
            set_limits: SetLimits::default(),
        };
        engine.follow_published().await;
        Ok(engine)
    }

    /// The same engine refusing a new rollout while `limit` run here
    /// ([`EngineError::TooManyRollouts`]); by default there is no limit.
    pub fn limit_running_rollouts(mut self, limit: usize) -> Self {
        self.max_running_rollouts = limit.max(1);
        self
    }

    /// The same engine refusing a new rollout of a fleet while `per_fleet` of that fleet
    /// run here (so one fleet's rollouts cannot take every slot; issue 25, finding 9), and
    /// a strategy whose `pause_between_waves` exceeds `max_pause`.
    pub fn limit_per_fleet(mut self, per_fleet: usize, max_pause: std::time::Duration) -> Self {
        self.max_per_fleet = per_fleet.max(1);
        self.max_pause = max_pause;
        self
    }

    /// The same engine refusing a new rollout of an identity while `per_identity` rollouts
    /// it started run here (issue 25, finding 9); by default there is no limit.
    pub fn limit_per_identity(mut self, per_identity: usize) -> Self {
        self.max_per_identity = per_identity.max(1);
        self
    }

    /// Every configured fleet with its set's size and latest version; a fleet whose set
    /// does not load is listed broken, with why ([`FleetInfo::error`]), among the others.
    pub fn fleets(&self) -> Vec<FleetInfo> {
        self.registry
            .fleets()
            .map(|fleet| {
                let set = match fleet.load_set() {
                    Ok(set) => set,
                    Err(e) => {
                        let why = match e {
                            crate::fleet::FleetError::Catalog { source, .. } => source.to_string(),
                            e => e.to_string(),
                        };
                        return FleetInfo {
                            name: fleet.name.clone(),
                            dialect: fleet.dialect,
                            tenant_count: fleet.tenants().len() as u32,
                            migration_count: 0,
                            latest_version: None,
                            destructive_versions: Vec::new(),
                            migrations_dir: std::fs::canonicalize(&fleet.migrations)
                                .unwrap_or_else(|_| fleet.migrations.clone()),
                            format: fleet.format,
                            error: Some(why),
                        };
                    }
                };
                FleetInfo {
                    name: fleet.name.clone(),
                    dialect: fleet.dialect,
                    tenant_count: fleet.tenants().len() as u32,
                    migration_count: set.len() as u32,
                    latest_version: set.latest(),
                    destructive_versions: set
                        .iter()
                        .filter(|m| m.up.destructive)
                        .map(|m| m.version.clone())
                        .collect(),
                    migrations_dir: std::fs::canonicalize(&fleet.migrations)
                        .unwrap_or_else(|_| fleet.migrations.clone()),
                    format: set.format(),
                    error: None,
                }
            })
            .collect()
    }

    /// The tenants of `fleet` that `selector` picks, in configuration order, each with its
    /// last-known state classified against the current set as `Status` classifies it
    /// (none when the set does not load).
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant id; [`EngineError::Store`]
    /// when the last-known state cannot be read.
    pub async fn tenants(
        &self,
        fleet: &str,
        selector: &Selector,
    ) -> Result<Vec<TenantInfo>, EngineError> {
        tenants::list(&self.registry, self.runner.store(), fleet, selector).await
    }

    /// Closes pooled tenant sessions once they have been idle for `idle_timeout`, until
    /// `stop` is cancelled; the server runs this beside the engine.
    pub async fn close_idle_sessions(&self, stop: CancellationToken) {
        self.registry.close_idle_sessions(stop).await;
    }

    /// Until `stop`: this replica's heartbeat, and joining rollouts other replicas started
    /// (or left when they died); the server runs this beside the engine.
    pub async fn serve_replica(&self, stop: CancellationToken) {
        self.runner.clone().serve_replica(stop).await;
    }

    /// After the shutdown token is cancelled: waits up to `grace` for tenants in flight
    /// to finish their migration (rollouts still running then are left interrupted), then
    /// closes every idle pooled session.
    pub async fn drain(&self, grace: Duration) {
        self.runner.drain(grace).await;
        self.registry.close_all_idle().await;
    }

    async fn scope(&self, fleet: &str, selector: &Selector) -> Result<Scope, EngineError> {
        self.scope_with(fleet, selector, None).await
    }

    /// The scope of a request on `fleet` that may name a published set (`set`: a tag or a
    /// digest) instead of the fleet's own.
    async fn scope_with(
        &self,
        fleet: &str,
        selector: &Selector,
        set: Option<&str>,
    ) -> Result<Scope, EngineError> {
        if fleet.is_empty() {
            return Err(EngineError::Missing("fleet"));
        }
        let fleet = self.registry.fleet(fleet)?.clone();
        let tenants = fleet.select(selector)?;
        let set = self.set_for(&fleet, set).await?;
        Ok(Scope {
            fleet,
            tenants,
            set,
        })
    }
}
