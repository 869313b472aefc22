//! One tenant in a rollout: lock, read history, plan, run the steps, unlock.

use std::{collections::BTreeSet, time::Instant};

use avocet_proto::v1::{self as pb, rollout_event::Kind};
use tracing::Instrument;

use super::{
    Operation, RolloutCtx,
    step::{RunMeta, run_step},
};
use crate::{
    dialect::{DbError, RecordStatus},
    fleet::Tenant,
    plan::{self, Direction, Plan},
    wire,
};

/// How a tenant failed: a stable code, the version if one is concerned, and a sentence.
pub(crate) struct Failure {
    code: &'static str,
    version: Option<i64>,
    message: String,
}

impl Failure {
    fn db(tenant: &Tenant, e: DbError) -> Self {
        let code = match e {
            DbError::LockTimeout { .. } => "lock_timeout",
            DbError::Connect(_) | DbError::Target(_) => "unreachable",
            _ => "history",
        };
        Self {
            code,
            version: None,
            message: format!("tenant {}: {e}", tenant.id),
        }
    }
}

/// What the tenant ended with.
pub(crate) struct TenantReport {
    pub(crate) outcome: pb::TenantOutcome,
    pub(crate) migrations_run: u32,
    current_version: Option<i64>,
    failure: Option<Failure>,
    plan: Option<pb::TenantPlan>,
}

impl TenantReport {
    /// The tenant's task panicked; the lock and sessions it held were dropped with it.
    pub(crate) fn panicked(tenant: &str, cause: &str) -> Self {
        let failure = Failure {
            code: "internal",
            version: None,
            message: format!("tenant {tenant}: the engine failed unexpectedly: {cause}"),
        };
        failed(failure, None, 0)
    }

    pub(crate) fn skipped() -> Self {
        Self {
            outcome: pb::TenantOutcome::Skipped,
            migrations_run: 0,
            current_version: None,
            failure: None,
            plan: None,
        }
    }
}

impl RolloutCtx {
    /// Runs the operation on one tenant and emits its events. Never panics on database
    /// errors: every failure becomes a `TenantFinished` with an error.
    pub(crate) async fn run_tenant(&self, tenant: &Tenant) -> TenantReport {
        let span = tracing::info_span!("tenant", tenant = %tenant.id);
        async {
            self.log.append(Kind::TenantStarted(pb::TenantStarted {
                tenant: tenant.id.clone(),
            }));
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

    /// Emits `TenantFinished` and records the tenant metric; returns the report.
    pub(crate) fn finish_tenant(
        &self,
        tenant: &Tenant,
        report: TenantReport,
        duration_ms: u64,
    ) -> TenantReport {
        let outcome = report
            .outcome
            .as_str_name()
            .trim_start_matches("TENANT_OUTCOME_");
        self.metrics.tenant(
            &self.fleet.name,
            self.direction().as_str(),
            &outcome.to_ascii_lowercase(),
            duration_ms,
        );
        if let Some(f) = &report.failure {
            tracing::warn!(code = f.code, version = f.version, "{}", f.message);
        }
        self.log.append(Kind::TenantFinished(pb::TenantFinished {
            tenant: tenant.id.clone(),
            outcome: report.outcome as i32,
            migrations_run: report.migrations_run,
            duration_ms,
            current_version: report.current_version,
            error: report.failure.as_ref().map(|f| pb::TenantError {
                code: f.code.to_owned(),
                version: f.version,
                message: f.message.clone(),
            }),
            plan: report.plan.clone(),
        }));
        report
    }

    fn plan(&self, history: &[crate::dialect::HistoryRecord]) -> Plan {
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
                    outcome: pb::TenantOutcome::Planned,
                    migrations_run: 0,
                    current_version: plan.current_version,
                    failure: None,
                    plan: Some(wire::tenant_plan(&tenant.id, &plan)),
                }
            }
            Err(e) => failed(Failure::db(tenant, e), None, 0),
        }
    }

    /// Holds the tenant lock around all work and releases it on every path; if this future
    /// is dropped instead, the guard's connection closes and the server frees the lock.
    async fn locked(&self, tenant: &Tenant) -> TenantReport {
        let lock = tenant.db.lock(self.fleet.lock_timeout).await;
        let dialect = self.fleet.dialect.as_str();
        let lock = match lock {
            Ok(lock) => {
                let waited = lock.waited.as_millis() as u64;
                self.metrics
                    .lock_wait(&self.fleet.name, dialect, true, waited);
                lock
            }
            Err(e) => {
                if let DbError::LockTimeout { waited_ms, .. } = &e {
                    self.metrics
                        .lock_wait(&self.fleet.name, dialect, false, *waited_ms);
                }
                return failed(Failure::db(tenant, e), None, 0);
            }
        };
        let report = self.migrate(tenant).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(tenant = %tenant.id, "releasing the tenant lock: {e}");
        }
        report
    }

    /// Reads the history and plans under the lock, then runs each step on a fresh session,
    /// so whatever a script changes in its session (`SET search_path`, `SET ROLE`, `USE`)
    /// cannot leak into the next migration.
    async fn migrate(&self, tenant: &Tenant) -> TenantReport {
        let history = match self.read_for_write(tenant).await {
            Ok(h) => h,
            Err(e) => return failed(Failure::db(tenant, e), None, 0),
        };
        let plan = self.plan(&history);
        let mut applied: BTreeSet<i64> = history
            .iter()
            .filter(|r| r.status == RecordStatus::Applied)
            .map(|r| r.version)
            .collect();
        let current = |applied: &BTreeSet<i64>| applied.last().copied();
        if let Some(error) = plan.first_error() {
            let failure = Failure {
                code: "blocked",
                version: error.version,
                message: format!("tenant {}: {}", tenant.id, error.message),
            };
            let mut report = failed(failure, current(&applied), 0);
            report.plan = Some(wire::tenant_plan(&tenant.id, &plan));
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
                let failure = Failure {
                    code: "cancelled",
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
                    let failure = Failure {
                        code: "migration_failed",
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
                    let mut failure = Failure::db(tenant, e);
                    failure.version = Some(m.version);
                    return failed(failure, current(&applied), run);
                }
            }
        }
        TenantReport {
            outcome: pb::TenantOutcome::Succeeded,
            migrations_run: run,
            current_version: current(&applied),
            failure: None,
            plan: None,
        }
    }

    async fn read_for_write(
        &self,
        tenant: &Tenant,
    ) -> Result<Vec<crate::dialect::HistoryRecord>, DbError> {
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
        step: &plan::Step,
        meta: &RunMeta<'_>,
    ) -> Result<super::step::StepOutcome, DbError> {
        let m = &step.migration;
        let mut session = tenant.db.connect().await?;
        self.log
            .append(Kind::MigrationStarted(pb::MigrationStarted {
                tenant: tenant.id.clone(),
                version: m.version,
                name: m.name.clone(),
                direction: wire::direction(step.direction) as i32,
                transactional: step.transactional,
            }));
        let outcome = run_step(session.as_mut(), step, meta).await;
        session.close().await;
        let outcome = outcome?;
        let status = match outcome.status {
            RecordStatus::Applied => pb::MigrationStatus::Applied,
            RecordStatus::RolledBack => pb::MigrationStatus::RolledBack,
            _ => pb::MigrationStatus::Failed,
        };
        self.metrics.migration(
            &self.fleet.name,
            self.fleet.dialect.as_str(),
            step.direction.as_str(),
            outcome.status.as_str(),
            outcome.duration_ms,
        );
        self.log
            .append(Kind::MigrationFinished(pb::MigrationFinished {
                tenant: tenant.id.clone(),
                version: m.version,
                name: m.name.clone(),
                status: status as i32,
                duration_ms: outcome.duration_ms,
                statements_done: outcome.statements_done,
                statements_total: outcome.statements_total,
                error: outcome.error.clone().unwrap_or_default(),
            }));
        Ok(outcome)
    }
}

fn failed(failure: Failure, current_version: Option<i64>, migrations_run: u32) -> TenantReport {
    TenantReport {
        outcome: pb::TenantOutcome::Failed,
        migrations_run,
        current_version,
        failure: Some(failure),
        plan: None,
    }
}
