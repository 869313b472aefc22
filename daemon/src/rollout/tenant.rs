//! One tenant in a rollout: the engine's run ([`crate::migrate`]) with this rollout's events,
//! metrics and stop signals, and what the control store keeps of its end.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use super::RolloutCtx;
use crate::{
    backup::Occasion,
    fleet::Tenant,
    migrate::{self, Job, Observer, StepOutcome, TenantReport},
    model::{
        BackupOnFailure, BackupTaken, EventKind, LockRetry, MigrationFinished, MigrationStarted,
        Step, TenantFinished, Version,
    },
    store::KnownState,
    telemetry::{MigrationDone, db_system_name, fail},
};

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
            let vars = self.fleet.placeholder_values(tenant);
            let expected = match self.spec.require_expected_schema && !self.spec.dry_run {
                true => match self.expected_fingerprints().await {
                    Ok(expected) => Some(expected),
                    Err(e) => {
                        let report = TenantReport::not_started(&tenant.id, &e.to_string());
                        return (
                            self.finish_tenant(&tenant.id, report, clock.elapsed()),
                            None,
                        );
                    }
                },
                false => None,
            };
            let job = Job {
                set: &self.set,
                op: self.spec.op.clone(),
                transaction: self.spec.transaction,
                dialect: self.fleet.dialect,
                lock_timeout: self.fleet.lock_timeout,
                rollout_id: &self.id,
                applied_by: &self.registry.instance_id,
                vars: &vars,
                guard: self.fleet.guard,
                accept_data_loss: self.spec.accept_data_loss,
                backup: self.fleet.backup.when,
                read_schema: self.fleet.census_on_apply,
                expected_schema: expected.as_ref(),
            };
            let mut report = if self.spec.dry_run {
                migrate::dry_run(tenant, &job).await
            } else {
                migrate::run(tenant, &job, self).await
            };
            if let Some(model) = report.schema.take() {
                self.record_schema(tenant, report.current_version, &model)
                    .await;
            }
            let known = report.known.take().map(|k| KnownState {
                fleet: self.fleet.name.clone(),
                tenant: tenant.id.clone(),
                applied: k.applied,
                current_version: k.current_version,
                failed_versions: k.failed_versions,
                blocked: k.blocked,
                error: k.error,
                read_at: crate::store::now_ms(),
            });
            let finished = self.finish_tenant(&tenant.id, report, clock.elapsed());
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

    /// The tenant's `TenantFinished` (stored with its work item by
    /// [`RolloutCtx::finish_work`]); records the tenant metric.
    pub(crate) fn finish_tenant(
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
                version = f.version.as_ref().map(tracing::field::display),
                "{}",
                f.message
            );
        }
        TenantFinished {
            tenant: tenant.to_owned(),
            outcome: report.outcome,
            migrations_run: report.migrations_run,
            duration_ms: duration.as_millis() as u64,
            current_version: report.current_version,
            error: report.failure,
            plan: report.plan,
        }
    }

    /// The tenant's id as a metric label, in fleets small enough for one.
    fn tenant_label<'a>(&self, tenant: &'a Tenant) -> Option<&'a str> {
        self.fleet
            .metrics_tenant_labels
            .then_some(tenant.id.as_str())
    }
}

#[async_trait]
impl Observer for RolloutCtx {
    fn lock_waited(&self, tenant: &Tenant, waited: Duration, acquired: bool) {
        self.metrics.lock_wait(
            &self.fleet.name,
            self.fleet.dialect.as_str(),
            acquired,
            self.tenant_label(tenant),
            waited.as_secs_f64(),
        );
    }

    async fn migration_started(&self, tenant: &Tenant, step: &Step) {
        let m = &step.migration;
        self.emit(EventKind::MigrationStarted(MigrationStarted {
            tenant: tenant.id.clone(),
            version: m.version.clone(),
            name: m.name.clone(),
            direction: step.direction,
            transactional: step.transactional,
        }))
        .await;
    }

    async fn lock_retry(&self, _tenant: &Tenant, retry: &LockRetry) {
        self.metrics
            .lock_retry(&self.fleet.name, self.fleet.dialect.as_str());
        self.emit(EventKind::LockRetry(retry.clone())).await;
    }

    async fn migration_finished(&self, tenant: &Tenant, step: &Step, outcome: &StepOutcome) {
        let m = &step.migration;
        self.metrics.migration(&MigrationDone {
            fleet: &self.fleet.name,
            dialect: self.fleet.dialect.as_str(),
            direction: step.direction.as_str(),
            status: outcome.status.as_str(),
            tenant: self.tenant_label(tenant),
            seconds: outcome.duration_ms as f64 / 1e3,
        });
        self.emit(EventKind::MigrationFinished(MigrationFinished {
            tenant: tenant.id.clone(),
            version: m.version.clone(),
            name: m.name.clone(),
            status: outcome.status,
            duration_ms: outcome.duration_ms,
            statements_done: outcome.statements_done,
            statements_total: outcome.statements_total,
            error: outcome.error.clone(),
        }))
        .await;
    }

    async fn backup(
        &self,
        tenant: &Tenant,
        before: &Step,
        version: Option<Version>,
    ) -> Result<(), String> {
        let m = &before.migration;
        let occasion = Occasion {
            rollout_id: Some(&self.id),
            before: Some((m.version.clone(), before.direction)),
            name: "",
            version,
        };
        match self.backups.take(&self.fleet, tenant, occasion).await {
            Ok(b) => {
                self.emit(EventKind::BackupTaken(BackupTaken {
                    tenant: tenant.id.clone(),
                    backup_id: b.id.clone(),
                    version: b.version,
                    before: m.version.clone(),
                    bytes: b.bytes,
                    sha256: b.sha256.clone(),
                    duration_ms: b.duration_ms(),
                }))
                .await;
                Ok(())
            }
            Err(e) if self.fleet.backup.on_failure == BackupOnFailure::Continue => {
                tracing::warn!(
                    tenant = %tenant.id,
                    version = %m.version,
                    "the backup failed and the fleet's on_failure is continue: version {} \
                     runs without it: {e}",
                    m.version
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop_between_migrations()
    }
}
