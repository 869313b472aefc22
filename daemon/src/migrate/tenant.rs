//! One tenant: lock, read the history and plan under the lock (DESIGN.md rule 4), run the
//! steps, unlock. Every migration runs on the locked session, reset before each one
//! (PostgreSQL), or on a session of its own (MySQL, SQLite), so whatever a script changes in
//! its session (`SET search_path`, `SET ROLE`, `USE`, temporary tables) cannot reach the
//! next migration.

use std::{collections::BTreeMap, time::Duration};

use tracing::Instrument;

use super::{
    Observer, RunMeta, StepOutcome,
    guard::Retries,
    lock::under_lock,
    record::Recorder,
    report::{Progress, TenantReport, db_failure},
    statements, transaction,
};
use crate::{
    dialect::{DbError, History, Session, connection_lost},
    fleet::{PooledSession, Tenant},
    model::{
        BackupWhen, Capabilities, DialectKind, FailureCode, HistoryRecord, LockGuard, MigrationSet,
        Plan, PlanView, RecordStatus, RolloutOp, Step, TenantFailure, TenantOutcome,
        TransactionMode,
    },
    plan,
    telemetry::fail,
};

/// What to run on a tenant, and on whose behalf.
pub(crate) struct Job<'a> {
    /// The migration set.
    pub(crate) set: &'a MigrationSet,
    /// Apply (to a target) or roll back (to a target).
    pub(crate) op: RolloutOp,
    /// One transaction per migration, or one for the tenant's whole plan.
    pub(crate) transaction: TransactionMode,
    /// The fleet's dialect.
    pub(crate) dialect: DialectKind,
    /// Longest wait for the tenant lock.
    pub(crate) lock_timeout: Duration,
    /// The rollout, for the history rows.
    pub(crate) rollout_id: &'a str,
    /// The daemon instance, for the history rows.
    pub(crate) applied_by: &'a str,
    /// The tenant's placeholder values.
    pub(crate) vars: &'a BTreeMap<String, String>,
    /// How long each statement may wait for a lock, and the retries (DESIGN.md rule 7).
    pub(crate) guard: LockGuard,
    /// A rollback's acceptance of the data loss of destructive `down` scripts (an apply
    /// carries its own in its options).
    pub(crate) accept_data_loss: bool,
    /// Which steps the fleet backs the tenant up before (the first one only).
    pub(crate) backup: BackupWhen,
    /// Read the tenant's schema on the locked session after a run that changed it
    /// succeeded ([`TenantReport::schema`]; `census_on_apply`).
    pub(crate) read_schema: bool,
    /// The expected fingerprint per version (its text, `""` for none): a tenant whose
    /// schema, read under the lock before anything runs, is not its version's fails
    /// `drifted` (`--require-expected-schema`). A version without one binds nothing.
    pub(crate) expected_schema: Option<&'a std::collections::HashMap<String, String>>,
}

impl Job<'_> {
    /// The tenant's plan over `history`, its placeholders checked.
    fn plan(&self, history: &[HistoryRecord]) -> Plan {
        let mut plan = match &self.op {
            RolloutOp::Apply(opts) => {
                plan::plan_apply(self.set, history, opts.clone(), self.dialect)
            }
            RolloutOp::Rollback(target) => plan::plan_rollback(
                self.set,
                history,
                target.clone(),
                self.accept_data_loss,
                self.dialect,
            ),
        };
        plan::check_placeholders(&mut plan, self.vars);
        plan
    }
}

/// What a dry run says of `tenant`: its plan over its history, read without the lock,
/// running nothing. A dry run is a plan: a tenant the real run would refuse (a blocking
/// error in its plan) fails `blocked` here too, with the same message.
pub(crate) async fn dry_run(tenant: &Tenant, job: &Job<'_>) -> TenantReport {
    match tenant.read_history().await {
        Ok(history) => {
            let plan = job.plan(&history);
            let blocked = plan.first_error().map(|error| TenantFailure {
                code: FailureCode::Blocked,
                version: error.version.clone(),
                message: format!("tenant {}: {}", tenant.id, error.message),
            });
            let outcome = match blocked {
                Some(_) => TenantOutcome::Failed,
                None => TenantOutcome::Planned,
            };
            let progress = Progress::new(&history, job.set, job.dialect);
            let mut report = progress.planned(outcome, PlanView::from(&plan), job.set);
            report.failure = blocked;
            report
        }
        Err(e) => TenantReport::db(&tenant.id, &e),
    }
}

/// Runs `job` on `tenant` under its lock and reports how it ended. Never panics on
/// database errors: every failure is in the report, with the tenant, the version and the
/// cause.
pub(crate) async fn run(tenant: &Tenant, job: &Job<'_>, observer: &dyn Observer) -> TenantReport {
    let work = async |session: &mut PooledSession, waited: Duration| {
        observer.lock_waited(tenant, waited, true);
        let mut report = migrate(tenant, job, session, observer).await;
        let changed = report.outcome == TenantOutcome::Succeeded && report.migrations_run > 0;
        if job.read_schema && changed {
            // After every commit, still under the lock: the schema the run left.
            match session.session().introspect().await {
                Ok(model) => report.schema = Some(model),
                Err(e) => {
                    tracing::warn!(tenant = %tenant.id, "reading the schema after the run: {e}")
                }
            }
        }
        report
    };
    under_lock(tenant, job.lock_timeout, work)
        .await
        .unwrap_or_else(|e| {
            if let DbError::LockTimeout { waited_ms, .. } = &e {
                observer.lock_waited(tenant, Duration::from_millis(*waited_ms), false);
            }
            TenantReport::db(&tenant.id, &e)
        })
}

/// Reads the history and plans under the lock, then runs the steps. A plan that is blocked
/// or has nothing to run creates nothing on the tenant, not even the history table.
async fn migrate(
    tenant: &Tenant,
    job: &Job<'_>,
    locked: &mut PooledSession,
    observer: &dyn Observer,
) -> TenantReport {
    let read = match locked.session().read_history().await {
        Ok(read) => read,
        Err(e) => {
            locked.poison();
            return TenantReport::db(&tenant.id, &e);
        }
    };
    let (ready, missing) = (read.ready(), read == History::Missing);
    let history = read.records().unwrap_or_default();
    let plan = job.plan(&history);
    let mut run = Progress::new(&history, job.set, job.dialect);
    if let Some(error) = plan.first_error() {
        let failure = TenantFailure {
            code: FailureCode::Blocked,
            version: error.version.clone(),
            message: format!("tenant {}: {}", tenant.id, error.message),
        };
        let mut report = run.planned(TenantOutcome::Failed, PlanView::from(&plan), job.set);
        report.failure = Some(failure);
        return report;
    }
    if let Some(expected) = job.expected_schema
        && !plan.steps.is_empty()
    {
        let version = plan::current_version(job.set, &history);
        let key = version.as_ref().map(|v| v.to_string()).unwrap_or_default();
        if let Some(print) = expected.get(&key) {
            let found = match locked.session().introspect().await {
                Ok(model) => model.fingerprint(crate::model::FingerprintOptions::default()),
                Err(e) => return TenantReport::db(&tenant.id, &e),
            };
            if &found != print {
                let shown = version
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |v| v.to_string());
                let failure = TenantFailure {
                    code: FailureCode::Drifted,
                    version: version.map(Into::into),
                    message: format!(
                        "tenant {}: its schema (fingerprint {}) is not the expected one for \
                         version {shown} ({}); nothing ran (`avocet census --tenant {}` \
                         shows what differs)",
                        tenant.id,
                        &found[..12],
                        &print[..print.len().min(12)],
                        tenant.id
                    ),
                };
                let mut report = run.planned(TenantOutcome::Failed, PlanView::from(&plan), job.set);
                report.failure = Some(failure);
                return report;
            }
        }
    }
    if !ready && !plan.steps.is_empty() {
        // The history table is made (or brought to today's layout) only to be written.
        let prepared = match missing {
            true => locked.session().create_history().await,
            false => locked.session().prepare_history().await.map(|_| ()),
        };
        if let Err(e) = prepared {
            locked.poison();
            return TenantReport::db(&tenant.id, &e);
        }
    }
    let flight = tenant.in_flight();
    let meta = RunMeta {
        rollout_id: job.rollout_id,
        applied_by: job.applied_by,
        batch: history.iter().map(|r| r.batch).max().unwrap_or(0) + 1,
        lock_check: locked.session().lock_check(),
        vars: job.vars,
        guard: job.guard,
        flight: &flight,
    };
    if job.transaction == TransactionMode::Tenant && !plan.steps.is_empty() {
        // One transaction: the backup, if any step needs one, comes before all of them.
        if let Some(step) = plan.steps.iter().find(|s| job.backup.covers(s))
            && let Err(failure) = backup(tenant, job, step, &run, observer).await
        {
            return run.failed(failure, job.set);
        }
        return grouped(tenant, job, locked, &plan.steps, &meta, run, observer).await;
    }
    let mut backed_up = false;
    for step in &plan.steps {
        let m = &step.migration;
        if !backed_up && job.backup.covers(step) {
            backed_up = true;
            if let Err(failure) = backup(tenant, job, step, &run, observer).await {
                return run.failed(failure, job.set);
            }
        }
        if observer.stop_requested() {
            let failure = TenantFailure {
                code: FailureCode::Cancelled,
                version: Some(m.version.clone()),
                message: format!(
                    "tenant {}: stopped before version {} (the rollout is stopping)",
                    tenant.id, m.version
                ),
            };
            return run.failed(failure, job.set);
        }
        let span = tracing::info_span!(
            "migration",
            avocet.version = %m.version,
            avocet.migration = %m.name,
            avocet.direction = step.direction.as_str(),
            avocet.transactional = step.transactional,
            avocet.status = tracing::field::Empty,
        );
        observer.migration_started(tenant, step).await;
        let outcome = one_step(tenant, locked, step, &meta, observer)
            .instrument(span.clone())
            .await;
        match outcome {
            Ok(o) => {
                span.record("avocet.status", o.status.as_str());
                observer.migration_finished(tenant, step, &o).await;
                if o.status != RecordStatus::Failed {
                    run.ran(step);
                    continue;
                }
                let message = o.error.unwrap_or_default();
                let code = match o.gave_up_on_lock {
                    true => FailureCode::LockTimeout,
                    false => FailureCode::MigrationFailed,
                };
                fail(&span, code.as_str(), &message);
                run.failed_step(step);
                let failure = TenantFailure {
                    code,
                    version: Some(m.version.clone()),
                    message: format!(
                        "tenant {}, version {} ({}): {message}",
                        tenant.id, m.version, m.name
                    ),
                };
                return run.failed(failure, job.set);
            }
            Err(e) => {
                let failure = db_failure(&tenant.id, Some(m.version.clone()), &e);
                fail(&span, failure.code.as_str(), &e.to_string());
                if matches!(e, DbError::LockLost { .. }) && !step.transactional {
                    // Its record says `failed`, with the statements that ran.
                    run.failed_step(step);
                }
                return run.failed(failure, job.set);
            }
        }
    }
    run.succeeded(job.set)
}

/// Backs `tenant` up before `step` through the observer (the fleet's policy covers it).
///
/// # Errors
/// The tenant's `backup_failed` failure, naming the version that did not run.
async fn backup(
    tenant: &Tenant,
    job: &Job<'_>,
    step: &Step,
    run: &Progress,
    observer: &dyn Observer,
) -> Result<(), TenantFailure> {
    let version = &step.migration.version;
    observer
        .backup(tenant, step, run.current(job.set))
        .await
        .map_err(|why| TenantFailure {
            code: FailureCode::BackupFailed,
            version: Some(version.clone()),
            message: format!(
                "tenant {}: the backup before version {version} ({}) failed, so it did not \
                 run: {why}",
                tenant.id, step.migration.name
            ),
        })
}

/// Runs one step: on the locked session when sessions reset in place, otherwise on a new
/// session closed afterwards.
async fn one_step(
    tenant: &Tenant,
    locked: &mut PooledSession,
    step: &Step,
    meta: &RunMeta<'_>,
    observer: &dyn Observer,
) -> Result<StepOutcome, DbError> {
    let caps = tenant.caps();
    let rec = Recorder::new(step, meta);
    let mut retries = Retries::new(tenant, observer, &rec.guard());
    if caps.resets_in_place {
        meta.flight.on(locked.session().server_id().await);
        let outcome = on_session(locked.session(), &rec, caps, true, &mut retries).await;
        if !outcome.as_ref().is_ok_and(|(_, clean)| *clean) {
            locked.poison();
        }
        outcome
            .map(|(o, _)| o)
            .map_err(|e| lost_with_session(e, meta))
    } else {
        let mut work = tenant.session().await?;
        work.set_clean(false);
        meta.flight.on(work.session().server_id().await);
        let outcome = on_session(work.session(), &rec, caps, false, &mut retries).await;
        work.close().await;
        outcome.map(|(o, _)| o)
    }
}

/// Runs `step` on `session`: in a transaction, or statement by statement. Also says whether
/// the session is clean afterwards.
async fn on_session(
    session: &mut dyn Session,
    rec: &Recorder<'_>,
    caps: Capabilities,
    reset: bool,
    retries: &mut Retries<'_>,
) -> Result<(StepOutcome, bool), DbError> {
    if rec.step.transactional {
        let one = std::slice::from_ref(rec);
        let mut ran = transaction::run(session, one, reset, retries).await?;
        Ok((ran.steps.remove(0), ran.clean))
    } else {
        let outcome = statements::run(session, rec, caps, reset, retries).await?;
        Ok((outcome, true))
    }
}

/// Grouped mode (`transaction = "tenant"`): all of a tenant's steps and their history rows
/// in one transaction, all or nothing. The engine allows it only on dialects with
/// transactional DDL and for steps that are all transactional.
async fn grouped(
    tenant: &Tenant,
    job: &Job<'_>,
    locked: &mut PooledSession,
    steps: &[Step],
    meta: &RunMeta<'_>,
    mut progress: Progress,
    observer: &dyn Observer,
) -> TenantReport {
    for step in steps {
        observer.migration_started(tenant, step).await;
    }
    let recorders: Vec<Recorder<'_>> = steps.iter().map(|s| Recorder::new(s, meta)).collect();
    let caps = tenant.caps();
    let mut retries = Retries::new(tenant, observer, &job.guard);
    let ran = if caps.resets_in_place {
        meta.flight.on(locked.session().server_id().await);
        let ran = transaction::run(locked.session(), &recorders, true, &mut retries).await;
        if !ran.as_ref().is_ok_and(|r| r.clean) {
            locked.poison();
        }
        ran.map_err(|e| lost_with_session(e, meta))
    } else {
        match tenant.session().await {
            Ok(mut work) => {
                work.set_clean(false);
                meta.flight.on(work.session().server_id().await);
                let ran = transaction::run(work.session(), &recorders, false, &mut retries).await;
                work.close().await;
                ran
            }
            Err(e) => Err(e),
        }
    };
    let ran = match ran {
        Ok(ran) => ran,
        Err(e) => return progress.failed(db_failure(&tenant.id, None, &e), job.set),
    };
    for (step, outcome) in steps.iter().zip(&ran.steps) {
        observer.migration_finished(tenant, step, outcome).await;
    }
    let Some(failed) = ran.failed else {
        for step in steps {
            progress.ran(step);
        }
        return progress.succeeded(job.set);
    };
    let culprit = failed.culprit.map(|c| &steps[c]);
    match culprit {
        Some(step) => progress.failed_step(step),
        None => steps.iter().for_each(|s| progress.failed_step(s)),
    }
    let versions: Vec<_> = steps.iter().map(|s| s.migration.version.clone()).collect();
    let failure = TenantFailure {
        code: match failed.gave_up_on_lock {
            true => FailureCode::LockTimeout,
            false => FailureCode::MigrationFailed,
        },
        version: culprit.map(|s| s.migration.version.clone()),
        message: match culprit {
            Some(step) => format!(
                "tenant {}, version {}: {}; the tenant's transaction was rolled back, so none \
                 of its {} migrations is applied",
                tenant.id,
                step.migration.version,
                failed.message,
                steps.len()
            ),
            None => format!(
                "tenant {}: the transaction of versions {} failed {}; none of them is applied",
                tenant.id,
                transaction::list(&versions),
                failed.message
            ),
        },
    };
    progress.failed(failure, job.set)
}

/// A connection lost on the session that holds the tenant lock took the lock with it.
fn lost_with_session(e: DbError, meta: &RunMeta<'_>) -> DbError {
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
