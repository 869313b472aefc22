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
    fleet::{Fleet, PooledSession, Tenant},
    model::{
        Direction, EventKind, FailureCode, HistoryRecord, MigrationFinished, MigrationStarted,
        Plan, RecordStatus, Step, TenantFailure, TenantFinished, TenantOutcome, TransactionMode,
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

/// Takes the tenant lock on a pooled session, runs `work` with that session and how long
/// the lock took, and releases the lock on every path. The session goes back to the pool
/// only when the release succeeded and `work` left it clean; if the future is dropped
/// instead, the session is closed, and the server frees the lock with it.
///
/// The tenant's ticket covers everything `work` may open: the locked session, plus one
/// session per migration where sessions cannot be reset in place (MySQL, SQLite).
///
/// # Errors
/// [`DbError::LockTimeout`] when the lock did not come within the fleet's `lock_timeout`;
/// [`DbError::Connect`] and the like when the tenant is unreachable. `work` does not run.
pub(super) async fn under_lock<T>(
    fleet: &Fleet,
    tenant: &Tenant,
    work: impl AsyncFnOnce(&mut PooledSession, Duration) -> T,
) -> Result<T, DbError> {
    let needs = if tenant.resets_in_place() { 1 } else { 2 };
    let _ticket = tenant.admit(needs).await;
    let mut session = tenant.session().await?;
    session.set_clean(false);
    let waited = match session.session().lock(fleet.lock_timeout).await {
        Ok(waited) => waited,
        Err(e) => {
            // A lock that did not come left the session as it was.
            session.set_clean(matches!(e, DbError::LockTimeout { .. }));
            return Err(e);
        }
    };
    let result = work(&mut session, waited).await;
    match session.session().unlock().await {
        Ok(()) => session.set_clean(true),
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, "releasing the tenant lock: {e}; closing its session");
            session.close().await;
        }
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
            let report = if self.dry_run {
                self.dry_run(tenant).await
            } else {
                self.locked(tenant).await
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
        match tenant.read_history().await {
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
        let work = async |session: &mut PooledSession, waited: Duration| {
            let waited = waited.as_millis() as u64;
            self.metrics
                .lock_wait(&self.fleet.name, dialect, true, waited);
            self.migrate(tenant, session).await
        };
        let result = under_lock(&self.fleet, tenant, work).await;
        result.unwrap_or_else(|e| {
            if let DbError::LockTimeout { waited_ms, .. } = &e {
                self.metrics
                    .lock_wait(&self.fleet.name, dialect, false, *waited_ms);
            }
            failed(db_failure(tenant, None, &e), None, 0)
        })
    }

    /// Reads the history and plans under the lock, then runs the steps: on the locked
    /// session, reset after each migration (PostgreSQL), or each on a new session
    /// (MySQL, SQLite), so whatever a script changes in its session (`SET search_path`,
    /// `SET ROLE`, `USE`, temporary tables) cannot reach the next migration.
    async fn migrate(&self, tenant: &Tenant, locked: &mut PooledSession) -> TenantReport {
        let history = match read_for_write(locked).await {
            Ok(h) => h,
            Err(e) => {
                locked.poison();
                return failed(db_failure(tenant, None, &e), None, 0);
            }
        };
        let plan = self.plan(&history);
        let applied: BTreeSet<i64> = history
            .iter()
            .filter(|r| r.status == RecordStatus::Applied)
            .map(|r| r.version)
            .collect();
        if let Some(error) = plan.first_error() {
            let failure = TenantFailure {
                code: FailureCode::Blocked,
                version: error.version,
                message: format!("tenant {}: {}", tenant.id, error.message),
            };
            let mut report = failed(failure, applied.last().copied(), 0);
            report.plan = Some(plan);
            return report;
        }
        let meta = RunMeta {
            rollout_id: &self.log.id,
            applied_by: &self.registry.instance_id,
            batch: history.iter().map(|r| r.batch).max().unwrap_or(0) + 1,
        };
        let mut run = Progress { applied, run: 0 };
        if self.transaction == TransactionMode::Tenant && !plan.steps.is_empty() {
            return self.grouped(tenant, locked, &plan.steps, &meta, run).await;
        }
        let reset: Option<Vec<String>> = locked.session().reset_sql().map(<[String]>::to_vec);
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
                return run.failed(failure);
            }
            let span = tracing::info_span!("migration", version = m.version, name = %m.name);
            let outcome = self
                .step(tenant, locked, reset.as_deref(), step, &meta)
                .instrument(span)
                .await;
            match outcome {
                Ok(o) if o.status != RecordStatus::Failed => run.ran(step),
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
                    return run.failed(failure);
                }
                Err(e) => return run.failed(db_failure(tenant, Some(m.version), &e)),
            }
        }
        run.succeeded()
    }

    /// Runs one step: on the locked session when it resets in place, otherwise on a new
    /// session closed afterwards. Emits the step's events and metric.
    async fn step(
        &self,
        tenant: &Tenant,
        locked: &mut PooledSession,
        reset: Option<&[String]>,
        step: &Step,
        meta: &RunMeta<'_>,
    ) -> Result<StepOutcome, DbError> {
        self.migration_started(tenant, step);
        let outcome = if let Some(reset) = reset {
            let outcome = run_step(locked.session(), step, meta, Some(reset)).await;
            if !outcome.as_ref().is_ok_and(|o| o.session_clean) {
                locked.poison();
            }
            outcome?
        } else {
            let mut work = tenant.session().await?;
            work.set_clean(false);
            let outcome = run_step(work.session(), step, meta, None).await;
            work.close().await;
            outcome?
        };
        self.migration_finished(tenant, step, &outcome);
        Ok(outcome)
    }

    pub(super) fn migration_started(&self, tenant: &Tenant, step: &Step) {
        let m = &step.migration;
        self.log
            .append(EventKind::MigrationStarted(MigrationStarted {
                tenant: tenant.id.clone(),
                version: m.version,
                name: m.name.clone(),
                direction: step.direction,
                transactional: step.transactional,
            }));
    }

    pub(super) fn migration_finished(&self, tenant: &Tenant, step: &Step, outcome: &StepOutcome) {
        let m = &step.migration;
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
    }
}

/// The history under the lock; the history tables are created by the first apply.
async fn read_for_write(locked: &mut PooledSession) -> Result<Vec<HistoryRecord>, DbError> {
    match locked.session().read_history().await? {
        Some(history) => Ok(history),
        None => {
            locked.session().create_history().await?;
            Ok(Vec::new())
        }
    }
}

/// What has run on a tenant so far.
pub(super) struct Progress {
    applied: BTreeSet<i64>,
    run: u32,
}

impl Progress {
    pub(super) fn ran(&mut self, step: &Step) {
        self.run += 1;
        match step.direction {
            Direction::Up => self.applied.insert(step.migration.version),
            Direction::Down => self.applied.remove(&step.migration.version),
        };
    }

    pub(super) fn failed(self, failure: TenantFailure) -> TenantReport {
        failed(failure, self.applied.last().copied(), self.run)
    }

    pub(super) fn succeeded(self) -> TenantReport {
        TenantReport {
            outcome: TenantOutcome::Succeeded,
            migrations_run: self.run,
            current_version: self.applied.last().copied(),
            failure: None,
            plan: None,
        }
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
