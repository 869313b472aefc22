//! The engine facade: the daemon's operations — plan, apply, rollback, verify, status,
//! repair — on validated domain requests, returning domain results or a rollout's event
//! log. The API layer converts wire messages and calls exactly one method here; everything
//! about fleets, sets, tenants and databases happens behind this facade.
//!
//! | file | what |
//! | --- | --- |
//! | `request.rs` | the requests ([`PlanRequest`], [`ApplyRequest`], …) |
//! | `report.rs` | the answers ([`FleetPlan`], [`FleetStatus`], …) |
//! | `reads.rs` | concurrent history reads for Plan, Verify and Status |
//! | `error.rs` | [`EngineError`] and its [`ErrorKind`] |

mod error;
mod reads;
mod report;
mod request;

use std::{collections::BTreeMap, sync::Arc};

use tokio_util::sync::CancellationToken;

pub use error::{EngineError, ErrorKind};
pub use report::{
    FleetInfo, FleetPlan, FleetStatus, FleetVerification, RepairOutcome, TenantInfo, TenantPlan,
    TenantStatus, TenantVerification,
};
pub use request::{
    ApplyRequest, LabelSelector, MAX_CONCURRENCY, PlanRequest, ReadRequest, RepairRequest,
    RollbackRequest, Selector,
};

pub use crate::rollout::RolloutLog;
use crate::{
    fleet::{Fleet, Registry, Tenant},
    model::{ApplyOptions, Direction, MigrationSet, RecordStatus, TransactionMode},
    rollout::{self, Operation, RolloutRequest, Runner},
};

/// The daemon's operations over one registry of fleets.
pub struct Engine {
    registry: Arc<Registry>,
    runner: Runner,
}

/// A fleet, its selected tenants and its migration set, as every operation starts.
struct Scope {
    fleet: Arc<Fleet>,
    tenants: Vec<Arc<Tenant>>,
    set: Arc<MigrationSet>,
}

impl Engine {
    /// An engine over `registry`; cancelling `shutdown` refuses new rollouts and stops
    /// running ones between migrations.
    pub fn new(registry: Registry, shutdown: CancellationToken) -> Self {
        let registry = Arc::new(registry);
        Self {
            runner: Runner::new(registry.clone(), shutdown),
            registry,
        }
    }

    /// Every configured fleet with its set's size and latest version.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] when a fleet's migration set no longer loads.
    pub fn fleets(&self) -> Result<Vec<FleetInfo>, EngineError> {
        self.registry
            .fleets()
            .map(|fleet| {
                let set = fleet.load_set()?;
                Ok(FleetInfo {
                    name: fleet.name.clone(),
                    dialect: fleet.dialect,
                    tenant_count: fleet.tenants.len() as u32,
                    migration_count: set.len() as u32,
                    latest_version: set.latest(),
                })
            })
            .collect()
    }

    /// The tenants of `fleet` that `selector` picks, in configuration order.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant id.
    pub fn tenants(
        &self,
        fleet: &str,
        selector: &Selector,
    ) -> Result<Vec<TenantInfo>, EngineError> {
        let fleet = self.registry.fleet(fleet)?;
        Ok(fleet
            .select(selector)?
            .iter()
            .map(|t| TenantInfo {
                id: t.id.clone(),
                labels: t.labels.clone(),
                schema: t.schema.clone(),
            })
            .collect())
    }

    /// What an apply would run on each selected tenant. Touches nothing.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant or a set that does not load;
    /// [`EngineError::InvalidArgument`] for a target version not in the set. Unreachable
    /// tenants are not errors: their plans say why.
    pub async fn plan(&self, req: PlanRequest) -> Result<FleetPlan, EngineError> {
        let scope = self.scope(&req.fleet, &req.selector)?;
        let opts = apply_options(&scope, &req)?;
        let Scope {
            fleet,
            tenants,
            set,
        } = scope;
        let tenants = reads::histories(tenants)
            .await
            .into_iter()
            .map(|(t, h)| reads::tenant_plan(&t, h, &set, opts, fleet.dialect))
            .collect();
        Ok(FleetPlan {
            fleet: fleet.name.clone(),
            set_digest: set.digest().clone(),
            tenants,
        })
    }

    /// Starts an apply rollout and returns its event log at once; it runs to the end even
    /// if nobody reads the log.
    ///
    /// # Errors
    /// As [`Engine::plan`], and [`EngineError::InvalidArgument`] for a concurrency outside
    /// 1 to [`MAX_CONCURRENCY`]; [`EngineError::FailedPrecondition`] when the set's digest
    /// is not `expected_set_digest`; [`EngineError::ShuttingDown`] during shutdown.
    pub fn apply(&self, req: ApplyRequest) -> Result<Arc<RolloutLog>, EngineError> {
        let scope = self.scope(&req.plan.fleet, &req.plan.selector)?;
        let opts = apply_options(&scope, &req.plan)?;
        if let Some(expected) = &req.expected_set_digest
            && expected != scope.set.digest()
        {
            return Err(EngineError::FailedPrecondition(format!(
                "fleet {:?}: the migration set changed since it was planned (digest {} \
                 expected, {} now): plan again",
                scope.fleet.name,
                expected,
                scope.set.digest()
            )));
        }
        self.start(
            scope,
            Operation::Apply(opts),
            Options {
                concurrency: req.concurrency,
                dry_run: req.dry_run,
                stop_on_first_failure: req.stop_on_first_failure,
                transaction: req.transaction,
            },
        )
    }

    /// Starts a rollback rollout and returns its event log at once.
    ///
    /// # Errors
    /// As [`Engine::apply`], without the digest check.
    pub fn rollback(&self, req: RollbackRequest) -> Result<Arc<RolloutLog>, EngineError> {
        let scope = self.scope(&req.fleet, &req.selector)?;
        self.start(
            scope,
            Operation::Rollback(req.target),
            Options {
                concurrency: req.concurrency,
                dry_run: req.dry_run,
                stop_on_first_failure: req.stop_on_first_failure,
                transaction: req.transaction,
            },
        )
    }

    /// Compares each selected tenant's history with the set. Touches nothing.
    ///
    /// # Errors
    /// As [`Engine::plan`].
    pub async fn verify(&self, req: ReadRequest) -> Result<FleetVerification, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &req.selector)?;
        let tenants = reads::histories(tenants)
            .await
            .into_iter()
            .map(|(t, h)| reads::verification(&t, h, &set, fleet.dialect))
            .collect();
        Ok(FleetVerification {
            fleet: fleet.name.clone(),
            tenants,
        })
    }

    /// Tenants per version, pending, failed and unreachable. Touches nothing.
    ///
    /// # Errors
    /// As [`Engine::plan`].
    pub async fn status(&self, req: ReadRequest) -> Result<FleetStatus, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &req.selector)?;
        let mut status = FleetStatus {
            fleet: fleet.name.clone(),
            latest_version: set.latest(),
            tenant_count: tenants.len() as u32,
            ..Default::default()
        };
        let mut versions = BTreeMap::new();
        for (tenant, history) in reads::histories(tenants).await {
            reads::count_status(&mut status, &mut versions, &tenant, history, &set);
        }
        status.versions = versions.into_iter().collect();
        Ok(status)
    }

    /// Rewrites a `failed` or `running` record under the tenant lock.
    ///
    /// # Errors
    /// [`EngineError::InvalidArgument`] when `mark` is not `Applied` or `RolledBack`;
    /// [`EngineError::Fleet`] for an unknown fleet or tenant; [`EngineError::Tenant`] when
    /// the lock does not come or the tenant cannot be read or written;
    /// [`EngineError::FailedPrecondition`] when the version has no such record or is not
    /// in the set.
    pub async fn repair(&self, req: RepairRequest) -> Result<RepairOutcome, EngineError> {
        if !matches!(req.mark, RecordStatus::Applied | RecordStatus::RolledBack) {
            return Err(EngineError::InvalidArgument(
                "a repair marks a record applied or rolled back".into(),
            ));
        }
        let selector = Selector {
            ids: vec![req.tenant.clone()],
            ..Default::default()
        };
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &selector)?;
        let tenant = tenants
            .first()
            .ok_or_else(|| EngineError::InvalidArgument("tenant is required".into()))?;
        let previous = rollout::repair(&self.registry, &fleet, tenant, &set, req.version, req.mark)
            .await
            .map_err(|e| EngineError::repair(&fleet.name, &tenant.id, e))?;
        Ok(RepairOutcome {
            tenant: tenant.id.clone(),
            version: req.version,
            previous,
        })
    }

    /// Closes pooled tenant sessions once they have been idle for `idle_timeout`, until
    /// `stop` is cancelled; the server runs this beside the engine.
    pub async fn close_idle_sessions(&self, stop: CancellationToken) {
        self.registry.close_idle_sessions(stop).await;
    }

    /// Waits until every rollout has ended (call after cancelling the shutdown token),
    /// then closes every idle pooled session.
    pub async fn drain(&self) {
        self.runner.drain().await;
        self.registry.close_all_idle().await;
    }

    /// The running or recent rollout `id`.
    pub fn rollout(&self, id: &str) -> Option<Arc<RolloutLog>> {
        self.runner.rollouts().get(id)
    }

    fn scope(&self, fleet: &str, selector: &Selector) -> Result<Scope, EngineError> {
        if fleet.is_empty() {
            return Err(EngineError::InvalidArgument("fleet is required".into()));
        }
        let fleet = self.registry.fleet(fleet)?.clone();
        let tenants = fleet.select(selector)?;
        let set = fleet.load_set()?;
        Ok(Scope {
            fleet,
            tenants,
            set,
        })
    }

    fn start(
        &self,
        scope: Scope,
        op: Operation,
        options: Options,
    ) -> Result<Arc<RolloutLog>, EngineError> {
        let concurrency = match options.concurrency {
            None => scope.fleet.concurrency,
            Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
            Some(n) => {
                return Err(EngineError::InvalidArgument(format!(
                    "concurrency {n} is outside 1 to {MAX_CONCURRENCY}"
                )));
            }
        };
        let transaction = options.transaction.unwrap_or(scope.fleet.transaction);
        if transaction == TransactionMode::Tenant {
            grouped_allowed(&scope, op.direction())?;
        }
        if self.runner.is_shutting_down() {
            return Err(EngineError::ShuttingDown);
        }
        Ok(self.runner.start(RolloutRequest {
            fleet: scope.fleet,
            tenants: scope.tenants,
            set: scope.set,
            op,
            concurrency,
            dry_run: options.dry_run,
            stop_on_first_failure: options.stop_on_first_failure,
            transaction,
        }))
    }
}

/// How a rollout runs, as a request says.
struct Options {
    concurrency: Option<usize>,
    dry_run: bool,
    stop_on_first_failure: bool,
    transaction: Option<TransactionMode>,
}

/// Grouped mode needs transactional DDL and a set whose scripts in `direction` all run in
/// a transaction.
fn grouped_allowed(scope: &Scope, direction: Direction) -> Result<(), EngineError> {
    let fleet = &scope.fleet.name;
    if !scope.fleet.dialect.transactional_ddl() {
        return Err(EngineError::FailedPrecondition(format!(
            "fleet {fleet:?}: transaction = \"tenant\" needs transactional DDL, which {} \
             does not have: use \"migration\"",
            scope.fleet.dialect
        )));
    }
    let outside = scope.set.iter().find(|m| match direction {
        Direction::Up => m.up.no_transaction,
        Direction::Down => m.down.as_ref().is_some_and(|d| d.no_transaction),
    });
    if let Some(m) = outside {
        return Err(EngineError::FailedPrecondition(format!(
            "fleet {fleet:?}: transaction = \"tenant\" cannot hold version {} ({}), which \
             runs outside a transaction: use \"migration\"",
            m.version, m.name
        )));
    }
    Ok(())
}

/// The apply options of a plan request; the target must name a migration of the set.
fn apply_options(scope: &Scope, req: &PlanRequest) -> Result<ApplyOptions, EngineError> {
    if let Some(v) = req.target
        && scope.set.get(v).is_none()
    {
        return Err(EngineError::InvalidArgument(format!(
            "fleet {:?} has no migration with version {v}",
            scope.fleet.name
        )));
    }
    Ok(ApplyOptions {
        target: req.target,
        allow_out_of_order: req.allow_out_of_order,
    })
}
