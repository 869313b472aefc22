//! Grouped mode (`transaction = "tenant"`): all of a tenant's steps and their history rows in
//! one transaction, all or nothing. The engine allows it only on dialects with transactional
//! DDL and for steps that are all transactional.

use super::{
    RolloutCtx,
    batch::{Failed, Part, Position, run_transaction},
    report::{Progress, TenantReport, db_failure},
    step::{Recorder, RunMeta, abort, record_failure},
    tenant::lost_with_session,
};
use crate::{
    dialect::DbError,
    fleet::{PooledSession, Tenant},
    model::{FailureCode, RecordStatus, Step, TenantFailure},
};

impl RolloutCtx {
    /// Runs `steps` in one transaction: on the locked session where it resets in place
    /// (PostgreSQL), otherwise on a session of its own (SQLite), closed afterwards.
    pub(super) async fn grouped(
        &self,
        tenant: &Tenant,
        locked: &mut PooledSession,
        steps: &[Step],
        meta: &RunMeta<'_>,
        progress: Progress,
    ) -> TenantReport {
        let reset: Option<Vec<String>> = locked.session().reset_sql().map(<[String]>::to_vec);
        for step in steps {
            self.migration_started(tenant, step).await;
        }
        let result = if reset.is_some() {
            let result = self
                .run_grouped(tenant, locked, steps, meta, reset.as_deref())
                .await;
            if !result.as_ref().is_ok_and(|clean| *clean) {
                locked.poison();
            }
            result
        } else {
            match tenant.session().await {
                Ok(mut work) => {
                    work.set_clean(false);
                    let result = self.run_grouped(tenant, &mut work, steps, meta, None).await;
                    work.close().await;
                    result
                }
                Err(e) => Err(GroupFailure::Db(e)),
            }
        };
        let mut progress = progress;
        match result {
            Ok(_) => {
                for step in steps {
                    progress.ran(step);
                }
                progress.succeeded(&self.set)
            }
            Err(GroupFailure::Db(e)) => progress.failed(db_failure(tenant, None, &e), &self.set),
            Err(GroupFailure::Migration { version, message }) => {
                if let Some(step) = steps.iter().find(|s| s.migration.version == version) {
                    progress.failed_step(step);
                }
                let failure = TenantFailure {
                    code: FailureCode::MigrationFailed,
                    version: Some(version),
                    message: format!(
                        "tenant {}, version {version}: {message}; the tenant's transaction \
                         was rolled back, so none of its {} migrations is applied",
                        tenant.id,
                        steps.len()
                    ),
                };
                progress.failed(failure, &self.set)
            }
        }
    }

    /// The transaction itself; `Ok(clean)` once committed, with whether the session was
    /// reset. Emits each step's `MigrationFinished`.
    async fn run_grouped(
        &self,
        tenant: &Tenant,
        session: &mut PooledSession,
        steps: &[Step],
        meta: &RunMeta<'_>,
        reset: Option<&[String]>,
    ) -> Result<bool, GroupFailure> {
        let recorders: Vec<Recorder<'_>> = steps.iter().map(|s| Recorder::new(s, meta)).collect();
        let mut parts: Vec<Part<'_>> = Vec::with_capacity(steps.len());
        for (step, r) in steps.iter().zip(&recorders) {
            let statements = r.statements().map_err(|message| GroupFailure::Migration {
                version: step.migration.version,
                message,
            })?;
            parts.push(Part {
                statements,
                trailer: r.done_sql(session.session()),
            });
        }
        let check = meta.check_sql();
        let outcome = run_transaction(session.session(), reset, &parts, check).await;
        let Err(Failed { at, error }) = outcome else {
            for (step, r) in steps.iter().zip(&recorders) {
                let done = r.outcome(
                    r.done_status(),
                    step.script().statement_count() as i64,
                    None,
                );
                self.migration_finished(tenant, step, &done).await;
            }
            return Ok(true);
        };
        if error.connection_lost() {
            let e = DbError::query("running the migrations")(error.source);
            return Err(GroupFailure::Db(match reset {
                Some(_) => lost_with_session(e, meta),
                None => e,
            }));
        }
        let (culprit, message) = match at {
            Position::Begin | Position::Trailer { .. } => {
                abort(session.session(), reset).await;
                return Err(GroupFailure::Db(DbError::query(
                    "writing the history table",
                )(error.source)));
            }
            Position::Statement { part, index } => (
                part,
                format!(
                    "{}: {}",
                    recorders[part].statement_label(index),
                    error.source
                ),
            ),
            Position::LockCheck => {
                abort(session.session(), reset).await;
                return Err(GroupFailure::Db(meta.lock_lost(&error.source)));
            }
            Position::Commit => (steps.len() - 1, format!("at commit: {}", error.source)),
        };
        if !abort(session.session(), reset).await {
            session.poison();
        }
        let failed = record_failure(session.session(), &recorders[culprit], 0, message.clone())
            .await
            .map_err(GroupFailure::Db)?;
        for (i, (step, r)) in steps.iter().zip(&recorders).enumerate() {
            let outcome = if i == culprit {
                failed.clone()
            } else {
                r.outcome(
                    RecordStatus::Failed,
                    0,
                    Some(format!(
                        "rolled back with version {}",
                        steps[culprit].migration.version
                    )),
                )
            };
            self.migration_finished(tenant, step, &outcome).await;
        }
        Err(GroupFailure::Migration {
            version: steps[culprit].migration.version,
            message,
        })
    }
}

enum GroupFailure {
    Db(DbError),
    Migration {
        version: crate::model::Version,
        message: String,
    },
}
