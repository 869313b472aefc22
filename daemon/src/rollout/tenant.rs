//! One tenant in a rollout: lock, read history, plan, run the steps, unlock.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use tracing::Instrument;

use super::{
    RolloutCtx,
    report::{Progress, TenantReport, db_failure},
    step::{RunMeta, StepOutcome, run_step},
};
use crate::{
    dialect::{DbError, connection_lost},
    fleet::{Fleet, PooledSession, Tenant},
    model::{
        EventKind, FailureCode, HistoryRecord, MigrationFinished, MigrationStarted, Plan, PlanView,
        RecordStatus, RolloutOp, Step, TenantFailure, TenantFinished, TenantOutcome,
        TransactionMode,
    },
    plan,
    store::KnownState,
    telemetry::{MigrationDone, db_system_name, fail},
};

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
    // The lock span lasts as long as the wait.
    let waited = {
        let span = tracing::info_span!(
            "lock",
            avocet.lock.timeout_s = fleet.lock_timeout.as_secs_f64(),
            avocet.lock.wait_s = tracing::field::Empty,
        );
        let locking = session.session().lock(fleet.lock_timeout);
        match locking.instrument(span.clone()).await {
            Ok(waited) => {
                span.record("avocet.lock.wait_s", waited.as_secs_f64());
                waited
            }
            Err(e) => {
                fail(
                    &span,
                    db_failure(tenant, None, &e).code.as_str(),
                    &e.to_string(),
                );
                // A lock that did not come left the session as it was.
                session.set_clean(matches!(e, DbError::LockTimeout { .. }));
                return Err(e);
            }
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
    /// Runs the operation on one tenant and emits its events; returns its end and its
    /// state afterwards. Never panics on database errors: every failure becomes a
    /// `TenantFinished` with an error.
    pub(crate) async fn run_tenant(&self, tenant: &Tenant) -> (TenantFinished, Option<KnownState>) {
        let span = tracing::info_span!(
            "tenant",
            avocet.fleet = %self.fleet.name,
            avocet.tenant = %tenant.id,
            db.system.name = db_system_name(self.fleet.dialect),
            db.namespace = tenant.namespace(),
            server.address = tenant.host(),
            avocet.outcome = tracing::field::Empty,
            avocet.migrations_run = tracing::field::Empty,
        );
        async {
            self.emit(EventKind::TenantStarted {
                tenant: tenant.id.clone(),
            })
            .await;
            let clock = Instant::now();
            let mut report = if self.spec.dry_run {
                self.dry_run(tenant).await
            } else {
                self.locked(tenant).await
            };
            let known = report.known.take().map(|k| KnownState {
                fleet: self.fleet.name.clone(),
                tenant: tenant.id.clone(),
                current_version: k.current_version,
                pending: k.pending,
                failed_versions: k.failed_versions,
                error: k.error,
                read_at: crate::store::now_ms(),
            });
            let finished = self
                .finish_tenant(&tenant.id, report, clock.elapsed())
                .await;
            let span = tracing::Span::current();
            span.record("avocet.outcome", finished.outcome.as_str());
            span.record("avocet.migrations_run", finished.migrations_run);
            if let Some(e) = &finished.error {
                fail(&span, e.code.as_str(), &e.message);
            }
            (finished, known)
        }
        .instrument(span)
        .await
    }

    /// Emits `TenantFinished` and records the tenant metric.
    pub(crate) async fn finish_tenant(
        &self,
        tenant: &str,
        report: TenantReport,
        duration: Duration,
    ) -> TenantFinished {
        self.metrics.tenant(
            &self.fleet.name,
            self.spec.op.direction().as_str(),
            report.outcome.as_str(),
            duration.as_secs_f64(),
        );
        if let Some(f) = &report.failure {
            tracing::warn!(
                code = f.code.as_str(),
                version = f.version.map(tracing::field::display),
                "{}",
                f.message
            );
        }
        let finished = TenantFinished {
            tenant: tenant.to_owned(),
            outcome: report.outcome,
            migrations_run: report.migrations_run,
            duration_ms: duration.as_millis() as u64,
            current_version: report.current_version,
            error: report.failure,
            plan: report.plan,
        };
        self.emit(EventKind::TenantFinished(finished.clone())).await;
        finished
    }

    /// `tenant`'s plan over `history`, with its scripts' placeholders checked against
    /// `vars` (the tenant's values).
    fn plan(&self, history: &[HistoryRecord], vars: &BTreeMap<String, String>) -> Plan {
        let mut plan = match self.spec.op {
            RolloutOp::Apply(opts) => {
                plan::plan_apply(&self.set, history, opts, self.fleet.dialect)
            }
            RolloutOp::Rollback(target) => {
                plan::plan_rollback(&self.set, history, target, self.fleet.dialect)
            }
        };
        plan::check_placeholders(&mut plan, vars);
        plan
    }

    async fn dry_run(&self, tenant: &Tenant) -> TenantReport {
        match tenant.read_history().await {
            Ok(history) => {
                let vars = self.fleet.placeholder_values(tenant);
                let plan = PlanView::from(&self.plan(&history, &vars));
                Progress::new(&history, &self.set).planned(TenantOutcome::Planned, plan, &self.set)
            }
            Err(e) => TenantReport::db(tenant, &e),
        }
    }

    /// Runs [`RolloutCtx::migrate`] under the tenant lock and records the lock wait.
    async fn locked(&self, tenant: &Tenant) -> TenantReport {
        let dialect = self.fleet.dialect.as_str();
        let labelled = self
            .fleet
            .metrics_tenant_labels
            .then_some(tenant.id.as_str());
        let work = async |session: &mut PooledSession, waited: Duration| {
            self.metrics.lock_wait(
                &self.fleet.name,
                dialect,
                true,
                labelled,
                waited.as_secs_f64(),
            );
            self.migrate(tenant, session).await
        };
        let result = under_lock(&self.fleet, tenant, work).await;
        result.unwrap_or_else(|e| {
            if let DbError::LockTimeout { waited_ms, .. } = &e {
                let waited = *waited_ms as f64 / 1e3;
                self.metrics
                    .lock_wait(&self.fleet.name, dialect, false, labelled, waited);
            }
            TenantReport::db(tenant, &e)
        })
    }

    /// Reads the history and plans under the lock, then runs the steps: on the locked
    /// session, reset after each migration (PostgreSQL), or each on a new session
    /// (MySQL, SQLite), so whatever a script changes in its session (`SET search_path`,
    /// `SET ROLE`, `USE`, temporary tables) cannot reach the next migration.
    async fn migrate(&self, tenant: &Tenant, locked: &mut PooledSession) -> TenantReport {
        let history = match locked.session().prepare_history().await {
            Ok(h) => h,
            Err(e) => {
                locked.poison();
                return TenantReport::db(tenant, &e);
            }
        };
        let vars = self.fleet.placeholder_values(tenant);
        let plan = self.plan(&history, &vars);
        let mut run = Progress::new(&history, &self.set);
        if let Some(error) = plan.first_error() {
            let failure = TenantFailure {
                code: FailureCode::Blocked,
                version: error.version,
                message: format!("tenant {}: {}", tenant.id, error.message),
            };
            let mut report = run.planned(TenantOutcome::Failed, PlanView::from(&plan), &self.set);
            report.failure = Some(failure);
            return report;
        }
        let meta = RunMeta {
            rollout_id: &self.id,
            applied_by: &self.registry.instance_id,
            batch: history.iter().map(|r| r.batch).max().unwrap_or(0) + 1,
            lock_check: locked.session().lock_check(),
            vars: &vars,
        };
        if self.spec.transaction == TransactionMode::Tenant && !plan.steps.is_empty() {
            return self.grouped(tenant, locked, &plan.steps, &meta, run).await;
        }
        let reset: Option<Vec<String>> = locked.session().reset_sql().map(<[String]>::to_vec);
        for step in &plan.steps {
            let m = &step.migration;
            if self.stop_between_migrations() {
                let failure = TenantFailure {
                    code: FailureCode::Cancelled,
                    version: Some(m.version),
                    message: format!(
                        "tenant {}: stopped before version {} (the rollout is stopping)",
                        tenant.id, m.version
                    ),
                };
                return run.failed(failure, &self.set);
            }
            let span = tracing::info_span!(
                "migration",
                avocet.version = %m.version,
                avocet.migration = %m.name,
                avocet.direction = step.direction.as_str(),
                avocet.transactional = step.transactional,
                avocet.status = tracing::field::Empty,
            );
            let outcome = self
                .step(tenant, locked, reset.as_deref(), step, &meta)
                .instrument(span.clone())
                .await;
            match &outcome {
                Ok(o) => {
                    span.record("avocet.status", o.status.as_str());
                    if o.status == RecordStatus::Failed {
                        let message = o.error.as_deref().unwrap_or("failed");
                        fail(&span, FailureCode::MigrationFailed.as_str(), message);
                    }
                }
                Err(e) => fail(
                    &span,
                    db_failure(tenant, Some(m.version), e).code.as_str(),
                    &e.to_string(),
                ),
            }
            match outcome {
                Ok(o) if o.status != RecordStatus::Failed => run.ran(step),
                Ok(o) => {
                    run.failed_step(step);
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
                    return run.failed(failure, &self.set);
                }
                Err(e) => {
                    if matches!(e, DbError::LockLost { .. }) && !step.transactional {
                        // Its record says `failed`, with the statements that ran.
                        run.failed_step(step);
                    }
                    return run.failed(db_failure(tenant, Some(m.version), &e), &self.set);
                }
            }
        }
        run.succeeded(&self.set)
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
        self.migration_started(tenant, step).await;
        let outcome = if let Some(reset) = reset {
            let outcome = run_step(locked.session(), step, meta, Some(reset)).await;
            if !outcome.as_ref().is_ok_and(|o| o.session_clean) {
                locked.poison();
            }
            outcome.map_err(|e| lost_with_session(e, meta))?
        } else {
            let mut work = tenant.session().await?;
            work.set_clean(false);
            let outcome = run_step(work.session(), step, meta, None).await;
            work.close().await;
            outcome?
        };
        self.migration_finished(tenant, step, &outcome).await;
        Ok(outcome)
    }

    pub(super) async fn migration_started(&self, tenant: &Tenant, step: &Step) {
        let m = &step.migration;
        self.emit(EventKind::MigrationStarted(MigrationStarted {
            tenant: tenant.id.clone(),
            version: m.version,
            name: m.name.clone(),
            direction: step.direction,
            transactional: step.transactional,
        }))
        .await;
    }

    pub(super) async fn migration_finished(
        &self,
        tenant: &Tenant,
        step: &Step,
        outcome: &StepOutcome,
    ) {
        let m = &step.migration;
        self.metrics.migration(&MigrationDone {
            fleet: &self.fleet.name,
            dialect: self.fleet.dialect.as_str(),
            direction: step.direction.as_str(),
            status: outcome.status.as_str(),
            tenant: self
                .fleet
                .metrics_tenant_labels
                .then_some(tenant.id.as_str()),
            seconds: outcome.duration_ms as f64 / 1e3,
        });
        self.emit(EventKind::MigrationFinished(MigrationFinished {
            tenant: tenant.id.clone(),
            version: m.version,
            name: m.name.clone(),
            status: outcome.status,
            duration_ms: outcome.duration_ms,
            statements_done: outcome.statements_done,
            statements_total: outcome.statements_total,
            error: outcome.error.clone(),
        }))
        .await;
    }
}

/// A connection lost on the session that holds the tenant lock took the lock with it.
pub(super) fn lost_with_session(e: DbError, meta: &RunMeta<'_>) -> DbError {
    match (e, &meta.lock_check) {
        (DbError::Query { source, context }, Some(check)) if connection_lost(&source) => {
            DbError::LockLost {
                lock: check.lock.clone(),
                cause: format!("{context}: {source}"),
            }
        }
        (e, _) => e,
    }
}
