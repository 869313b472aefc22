//! One tenant in a rollout: lock, read history, plan, run the steps, unlock.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use tracing::Instrument;

use super::{
    Operation, RolloutCtx,
    step::{RunMeta, StepOutcome, run_step},
};
use crate::{
    dialect::DbError,
    fleet::{Fleet, Tenant},
    model::{
        Direction, EventKind, FailureCode, HistoryRecord, MigrationFinished, MigrationStarted,
        Plan, RecordStatus, Step, TenantFailure, TenantFinished, TenantOutcome,
    },
    plan,
};

/// A tenant failure from a database error: `lock_timeout`, `unreachable` or `history`.
pub(super) fn db_failure(tenant: &Tenant, version: Option<i64>, e: &DbError) -> TenantFailure {
    let code = match e {
        DbError::LockTimeout { .. } => FailureCode::LockTimeout,
        e if e.is_unreachable() => FailureCode::Unreachable,
        _ => FailureCode::History,
    };
    TenantFailure {
        code,
        version,
        message: format!("tenant {}: {e}", tenant.id),
    }
}

/// What the tenant ended with, before its duration is known.
pub(crate) struct TenantReport {
    outcome: TenantOutcome,
    migrations_run: u32,
    current_version: Option<i64>,
    failure: Option<TenantFailure>,
    plan: Option<Plan>,
}

impl TenantReport {
    /// The tenant's task panicked; the lock and sessions it held were dropped with it.
    pub(crate) fn panicked(tenant: &str, cause: &str) -> Self {
        let failure = TenantFailure {
            code: FailureCode::Internal,
            version: None,
            message: format!("tenant {tenant}: the engine failed unexpectedly: {cause}"),
        };
        failed(failure, None, 0)
    }

    pub(crate) fn skipped() -> Self {
        Self {
            outcome: TenantOutcome::Skipped,
            migrations_run: 0,
            current_version: None,
            failure: None,
            plan: None,
        }
    }
}

/// Takes the tenant lock, runs `work` (given how long the lock took), and releases the lock on every path. If the future
/// is dropped instead, the guard's connection closes and the server frees the lock.
///
/// # Errors
/// [`DbError::LockTimeout`] when the lock did not come within the fleet's `lock_timeout`;
/// [`DbError::Connect`] and the like when the tenant is unreachable. `work` does not run.
pub(super) async fn under_lock<T>(
    fleet: &Fleet,
    tenant: &Tenant,
    work: impl AsyncFnOnce(Duration) -> T,
) -> Result<T, DbError> {
    let lock = tenant.db.lock(fleet.lock_timeout).await?;
    let result = work(lock.waited).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(tenant = %tenant.id, "releasing the tenant lock: {e}");
    }
    Ok(result)
}

impl RolloutCtx {
    /// Runs the operation on one tenant and emits its events. Never panics on database
    /// errors: every failure becomes a `TenantFinished` with an error.
    pub(crate) async fn run_tenant(&self, tenant: &Tenant) -> TenantFinished {
        let span = tracing::info_span!("tenant", tenant = %tenant.id);
        async {
            self.log.append(EventKind::TenantStarted {
                tenant: tenant.id.clone(),
            });
            let clock = Instant::now();
            let report = {
                let _budget = self.registry.connections(2).await;
                if self.dry_run {
                    self.dry_run(tenant).await
                } else {
                    self.locked(tenant).await
                }
            };
            self.finish_tenant(tenant, report, clock.elapsed().as_millis() as u64)
        }
        .instrument(span)
        .await
    }

    /// Emits `TenantFinished` and records the tenant metric.
    pub(crate) fn finish_tenant(
        &self,
        tenant: &Tenant,
        report: TenantReport,
        duration_ms: u64,
    ) -> TenantFinished {
        self.metrics.tenant(
            &self.fleet.name,
            self.op.direction().as_str(),
            report.outcome.as_str(),
            duration_ms,
        );
        if let Some(f) = &report.failure {
            tracing::warn!(code = f.code.as_str(), version = f.version, "{}", f.message);
        }
        let finished = TenantFinished {
            tenant: tenant.id.clone(),
            outcome: report.outcome,
            migrations_run: report.migrations_run,
            duration_ms,
            current_version: report.current_version,
            error: report.failure,
            plan: report.plan,
        };
        self.log.append(EventKind::TenantFinished(finished.clone()));
        finished
    }

    fn plan(&self, history: &[HistoryRecord]) -> Plan {
        match self.op {
            Operation::Apply(opts) => {
                plan::plan_apply(&self.set, history, opts, self.fleet.dialect)
            }
            Operation::Rollback(target) => {
                plan::plan_rollback(&self.set, history, target, self.fleet.dialect)
            }
        }
    }

    async fn dry_run(&self, tenant: &Tenant) -> TenantReport {
        match crate::dialect::read_history(tenant.db.as_ref()).await {
            Ok(history) => {
                let plan = self.plan(&history);
                TenantReport {
                    outcome: TenantOutcome::Planned,
                    migrations_run: 0,
                    current_version: plan.current_version,
                    failure: None,
                    plan: Some(plan),
                }
            }
            Err(e) => failed(db_failure(tenant, None, &e), None, 0),
        }
    }

    /// Runs [`RolloutCtx::migrate`] under the tenant lock and records the lock wait.
    async fn locked(&self, tenant: &Tenant) -> TenantReport {
        let dialect = self.fleet.dialect.as_str();
        let result = under_lock(&self.fleet, tenant, async |waited: Duration| {
            let waited = waited.as_millis() as u64;
            self.metrics
                .lock_wait(&self.fleet.name, dialect, true, waited);
            self.migrate(tenant).await
        })
        .await;
        result.unwrap_or_else(|e| {
            if let DbError::LockTimeout { waited_ms, .. } = &e {
                self.metrics
                    .lock_wait(&self.fleet.name, dialect, false, *waited_ms);
            }
            failed(db_failure(tenant, None, &e), None, 0)
        })
    }

    /// Reads the history and plans under the lock, then runs each step on a fresh session,
    /// so whatever a script changes in its session (`SET search_path`, `SET ROLE`, `USE`)
    /// cannot leak into the next migration.
    async fn migrate(&self, tenant: &Tenant) -> TenantReport {
        let history = match self.read_for_write(tenant).await {
            Ok(h) => h,
            Err(e) => return failed(db_failure(tenant, None, &e), None, 0),
        };
        let plan = self.plan(&history);
        let mut applied: BTreeSet<i64> = history
            .iter()
            .filter(|r| r.status == RecordStatus::Applied)
            .map(|r| r.version)
            .collect();
        let current = |applied: &BTreeSet<i64>| applied.last().copied();
        if let Some(error) = plan.first_error() {
            let failure = TenantFailure {
                code: FailureCode::Blocked,
                version: error.version,
                message: format!("tenant {}: {}", tenant.id, error.message),
            };
            let mut report = failed(failure, current(&applied), 0);
            report.plan = Some(plan);
            return report;
        }
        let meta = RunMeta {
            rollout_id: &self.log.id,
            applied_by: &self.registry.instance_id,
            batch: history.iter().map(|r| r.batch).max().unwrap_or(0) + 1,
        };
        let mut run = 0;
        for step in &plan.steps {
            let m = &step.migration;
            if self.cancel.is_cancelled() {
                let failure = TenantFailure {
                    code: FailureCode::Cancelled,
                    version: Some(m.version),
                    message: format!(
                        "tenant {}: stopped before version {} (shutdown)",
                        tenant.id, m.version
                    ),
                };
                return failed(failure, current(&applied), run);
            }
            let span = tracing::info_span!("migration", version = m.version, name = %m.name);
            let outcome = self.step(tenant, step, &meta).instrument(span).await;
            match outcome {
                Ok(o) if o.status != RecordStatus::Failed => {
                    run += 1;
                    match step.direction {
                        Direction::Up => applied.insert(m.version),
                        Direction::Down => applied.remove(&m.version),
                    };
                }
                Ok(o) => {
                    let failure = TenantFailure {
                        code: FailureCode::MigrationFailed,
                        version: Some(m.version),
                        message: format!(
                            "tenant {}, version {} ({}): {}",
                            tenant.id,
                            m.version,
                            m.name,
                            o.error.unwrap_or_default()
                        ),
                    };
                    return failed(failure, current(&applied), run);
                }
                Err(e) => {
                    return failed(
                        db_failure(tenant, Some(m.version), &e),
                        current(&applied),
                        run,
                    );
                }
            }
        }
        TenantReport {
            outcome: TenantOutcome::Succeeded,
            migrations_run: run,
            current_version: current(&applied),
            failure: None,
            plan: None,
        }
    }

    async fn read_for_write(&self, tenant: &Tenant) -> Result<Vec<HistoryRecord>, DbError> {
        let mut session = tenant.db.connect().await?;
        let history = match session.ensure_history().await {
            Ok(()) => session.read_history().await,
            Err(e) => Err(e),
        };
        session.close().await;
        history
    }

    async fn step(
        &self,
        tenant: &Tenant,
        step: &Step,
        meta: &RunMeta<'_>,
    ) -> Result<StepOutcome, DbError> {
        let m = &step.migration;
        let mut session = tenant.db.connect().await?;
        self.log
            .append(EventKind::MigrationStarted(MigrationStarted {
                tenant: tenant.id.clone(),
                version: m.version,
                name: m.name.clone(),
                direction: step.direction,
                transactional: step.transactional,
            }));
        let outcome = run_step(session.as_mut(), step, meta).await;
        session.close().await;
        let outcome = outcome?;
        self.metrics.migration(
            &self.fleet.name,
            self.fleet.dialect.as_str(),
            step.direction.as_str(),
            outcome.status.as_str(),
            outcome.duration_ms,
        );
        self.log
            .append(EventKind::MigrationFinished(MigrationFinished {
                tenant: tenant.id.clone(),
                version: m.version,
                name: m.name.clone(),
                status: outcome.status,
                duration_ms: outcome.duration_ms,
                statements_done: outcome.statements_done,
                statements_total: outcome.statements_total,
                error: outcome.error.clone(),
            }));
        Ok(outcome)
    }
}

fn failed(
    failure: TenantFailure,
    current_version: Option<i64>,
    migrations_run: u32,
) -> TenantReport {
    TenantReport {
        outcome: TenantOutcome::Failed,
        migrations_run,
        current_version,
        failure: Some(failure),
        plan: None,
    }
}
