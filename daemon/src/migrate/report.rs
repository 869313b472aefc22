//! What one tenant ended with: its outcome for the event, and what its history table says
//! now, for the tenant's last-known state.

use std::collections::BTreeSet;

use crate::{
    dialect::DbError,
    model::{
        Direction, FailureCode, HistoryRecord, MigrationKey, MigrationSet, PlanView, RecordStatus,
        Step, TenantFailure, TenantOutcome,
    },
};

/// What a tenant's history table says, as far as the engine knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// What is applied; `None` when the tenant could not be read.
    pub(crate) applied: Option<crate::model::Applied>,
    pub(crate) current_version: Option<crate::model::Version>,
    pub(crate) failed_versions: Vec<MigrationKey>,
    /// A record stops an apply until `avocet repair`.
    pub(crate) blocked: bool,
    /// Why the tenant could not be read.
    pub(crate) error: Option<String>,
}

/// What the tenant ended with, before its duration is known.
pub(crate) struct TenantReport {
    pub(crate) outcome: TenantOutcome,
    pub(crate) migrations_run: u32,
    pub(crate) current_version: Option<crate::model::Version>,
    pub(crate) failure: Option<TenantFailure>,
    pub(crate) plan: Option<PlanView>,
    /// The tenant's state afterwards; `None` when nothing was learnt (a lock that did not
    /// come).
    pub(crate) known: Option<Known>,
    /// Its schema read right after a successful run that changed it, on the locked session
    /// (`census_on_apply`); `None` otherwise or when the read failed.
    pub(crate) schema: Option<crate::model::SchemaModel>,
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

    /// The tenant was not started: what it needed first could not be read (`cause`, e.g.
    /// the control store's expected schemas).
    pub(crate) fn not_started(tenant: &str, cause: &str) -> Self {
        let failure = TenantFailure {
            code: FailureCode::Internal,
            version: None,
            message: format!("tenant {tenant}: not started: {cause}"),
        };
        failed(failure, None, 0)
    }

    /// The rollout stopped before this tenant started.
    pub(crate) fn skipped() -> Self {
        Self {
            outcome: TenantOutcome::Skipped,
            migrations_run: 0,
            current_version: None,
            failure: None,
            plan: None,
            known: None,
            schema: None,
        }
    }

    /// A resumed rollout's tenant that the fleet no longer has.
    pub(crate) fn unconfigured(tenant: &str) -> Self {
        let failure = TenantFailure {
            code: FailureCode::Unreachable,
            version: None,
            message: format!("tenant {tenant} is no longer configured in its fleet"),
        };
        failed(failure, None, 0)
    }

    /// A failure from a database error before anything was learnt about the tenant; an
    /// unreachable tenant is known to be unreachable.
    pub(crate) fn db(tenant: &str, e: &DbError) -> Self {
        let mut report = failed(db_failure(tenant, None, e), None, 0);
        if e.is_unreachable() {
            report.known = Some(Known {
                error: Some(e.to_string()),
                ..Known::default()
            });
        }
        report
    }
}

/// A tenant failure from a database error: `lock_timeout`, `unreachable` or `history`.
pub(crate) fn db_failure(
    tenant: &str,
    version: Option<crate::model::MigrationKey>,
    e: &DbError,
) -> TenantFailure {
    let code = match e {
        DbError::LockTimeout { .. } => FailureCode::LockTimeout,
        DbError::LockLost { .. } => FailureCode::LockLost,
        DbError::Cancelled { .. } => FailureCode::Cancelled,
        e if e.is_unreachable() => FailureCode::Unreachable,
        _ => FailureCode::History,
    };
    TenantFailure {
        code,
        version,
        message: format!("tenant {tenant}: {e}"),
    }
}

pub(crate) fn failed(
    failure: TenantFailure,
    current_version: Option<crate::model::Version>,
    migrations_run: u32,
) -> TenantReport {
    TenantReport {
        outcome: TenantOutcome::Failed,
        migrations_run,
        current_version,
        failure: Some(failure),
        plan: None,
        known: None,
        schema: None,
    }
}

/// What has run on a tenant so far, from its history when the lock was taken.
pub(crate) struct Progress {
    applied: BTreeSet<MigrationKey>,
    /// Migrations recorded `failed` or `running`.
    attention: BTreeSet<MigrationKey>,
    /// Those of them that stop an apply until `avocet repair`.
    blocking: BTreeSet<MigrationKey>,
    run: u32,
}

impl Progress {
    /// From `history` read against `set`: a repeatable whose file changed since its
    /// record counts as not applied, since it is pending ([`crate::plan::pending`]).
    pub(crate) fn new(
        history: &[HistoryRecord],
        set: &MigrationSet,
        dialect: crate::model::DialectKind,
    ) -> Self {
        let stale = |r: &HistoryRecord| set.get(r.version.clone()).is_some_and(|m| r.rerun_due(m));
        Self {
            applied: history
                .iter()
                .filter(|r| r.status == RecordStatus::Applied && !stale(r))
                .map(|r| r.version.clone())
                .collect(),
            attention: history
                .iter()
                .filter(|r| r.status.needs_attention())
                .map(|r| r.version.clone())
                .collect(),
            blocking: history
                .iter()
                .filter(|r| crate::plan::blocks_apply(set, r, dialect))
                .map(|r| r.version.clone())
                .collect(),
            run: 0,
        }
    }

    /// The newest numbered version applied in `set`'s order (a repeatable is never current).
    pub(crate) fn current(&self, set: &MigrationSet) -> Option<crate::model::Version> {
        set.newest(self.applied.iter().filter_map(MigrationKey::version))
    }

    /// `step` ran to completion.
    pub(crate) fn ran(&mut self, step: &Step) {
        self.run += 1;
        let v = step.migration.version.clone();
        self.attention.remove(&v);
        self.blocking.remove(&v);
        match step.direction {
            Direction::Up => self.applied.insert(v),
            Direction::Down => self.applied.remove(&v),
        };
    }

    /// `step` failed and its record now says `failed` (a failed transactional `down` keeps
    /// its `applied` row).
    pub(crate) fn failed_step(&mut self, step: &Step) {
        if !(step.transactional && step.direction == Direction::Down) {
            self.attention.insert(step.migration.version.clone());
            self.applied.remove(&step.migration.version);
            // A failed transactional `up` left nothing behind: an apply retries it.
            if !(step.transactional && step.direction == Direction::Up) {
                self.blocking.insert(step.migration.version.clone());
            }
        }
    }

    fn known(&self, set: &MigrationSet) -> Known {
        Known {
            applied: Some(crate::model::Applied::from_versions(set, &self.applied)),
            current_version: self.current(set),
            failed_versions: self.attention.iter().cloned().collect(),
            blocked: !self.blocking.is_empty(),
            error: None,
        }
    }

    pub(crate) fn failed(self, failure: TenantFailure, set: &MigrationSet) -> TenantReport {
        let mut report = failed(failure, self.current(set), self.run);
        report.known = Some(self.known(set));
        report
    }

    pub(crate) fn succeeded(self, set: &MigrationSet) -> TenantReport {
        TenantReport {
            outcome: TenantOutcome::Succeeded,
            migrations_run: self.run,
            current_version: self.current(set),
            failure: None,
            plan: None,
            known: Some(self.known(set)),
            schema: None,
        }
    }

    /// A plan that did not run (a dry run, or a tenant its plan blocked).
    pub(crate) fn planned(
        self,
        outcome: TenantOutcome,
        plan: PlanView,
        set: &MigrationSet,
    ) -> TenantReport {
        TenantReport {
            outcome,
            migrations_run: 0,
            current_version: self.current(set),
            failure: None,
            plan: Some(plan),
            known: Some(self.known(set)),
            schema: None,
        }
    }
}
