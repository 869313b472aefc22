//! Rollout events and stored rollouts to their `avocet.v1` wire form.

use avocet_proto::v1::{self as pb, rollout_event::Kind};

use super::send::{self, Wire, direction, plan_view};
use crate::model::{
    Amount, EventKind, MigrationFinished, RecordStatus, RolloutEvent, RolloutRecord, RolloutState,
    Strategy, TenantFinished, TenantOutcome,
};

fn amount(a: Option<Amount>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// A strategy, every field set but the canary selector (it orders the tenants when the
/// rollout is created, and is not kept).
pub(super) fn strategy(s: &Strategy) -> pb::Strategy {
    pb::Strategy {
        canary: Some(s.canary),
        wave_size: amount(s.wave_size),
        concurrency: Some(s.concurrency),
        per_host_concurrency: Some(s.per_host_concurrency.unwrap_or(0)),
        max_failures: amount(s.max_failures),
        pause_between_waves_ms: Some(s.pause_between_waves_ms),
        canary_selector: String::new(),
    }
}

pub(super) fn rollout_state(s: RolloutState) -> pb::RolloutState {
    match s {
        RolloutState::Pending => pb::RolloutState::Pending,
        RolloutState::Running => pb::RolloutState::Running,
        RolloutState::Paused => pb::RolloutState::Paused,
        RolloutState::Succeeded => pb::RolloutState::Succeeded,
        RolloutState::Failed => pb::RolloutState::Failed,
        RolloutState::Cancelled => pb::RolloutState::Cancelled,
        RolloutState::Interrupted => pb::RolloutState::Interrupted,
    }
}

impl From<&RolloutRecord> for pb::Rollout {
    fn from(r: &RolloutRecord) -> Self {
        Self {
            id: r.id.clone(),
            fleet: r.spec.fleet.clone(),
            direction: direction(r.spec.op.direction()),
            state: rollout_state(r.state) as i32,
            created_by: r.created_by.clone(),
            created_at_unix_ms: r.created_at_unix_ms,
            finished_at_unix_ms: r.finished_at_unix_ms,
            strategy: Some(strategy(&r.spec.strategy)),
            dry_run: r.spec.dry_run,
            tenant_count: r.tenant_count,
            succeeded: r.succeeded,
            failed: r.failed,
            skipped: r.skipped,
            pending: r.pending(),
            migrations_run: r.migrations_run,
            last_seq: r.last_seq,
            waves: r.waves,
            request_json: serde_json::to_string(&r.spec).unwrap_or_default(),
            audit: r
                .audit
                .iter()
                .map(|a| pb::AuditEntry {
                    at_unix_ms: a.at_unix_ms,
                    method: a.method.clone(),
                    caller: a.caller.clone(),
                })
                .collect(),
        }
    }
}

fn migration_finished(m: &MigrationFinished) -> pb::MigrationFinished {
    let status = match m.status {
        RecordStatus::Applied => pb::MigrationStatus::Applied,
        RecordStatus::RolledBack => pb::MigrationStatus::RolledBack,
        RecordStatus::Failed | RecordStatus::Running => pb::MigrationStatus::Failed,
    };
    pb::MigrationFinished {
        tenant: m.tenant.clone(),
        version: Some(m.version.wire()),
        name: m.name.clone(),
        status: status as i32,
        duration_ms: m.duration_ms,
        statements_done: m.statements_done,
        statements_total: m.statements_total,
        error: m.error.clone().unwrap_or_default(),
    }
}

fn tenant_finished(t: &TenantFinished) -> pb::TenantFinished {
    let outcome = match t.outcome {
        TenantOutcome::Succeeded => pb::TenantOutcome::Succeeded,
        TenantOutcome::Failed => pb::TenantOutcome::Failed,
        TenantOutcome::Skipped => pb::TenantOutcome::Skipped,
        TenantOutcome::Planned => pb::TenantOutcome::Planned,
    };
    pb::TenantFinished {
        tenant: t.tenant.clone(),
        outcome: outcome as i32,
        migrations_run: t.migrations_run,
        duration_ms: t.duration_ms,
        current_version: send::opt(&t.current_version),
        error: t.error.as_ref().map(|f| pb::TenantError {
            code: f.code.as_str().to_owned(),
            version: send::opt(&f.version),
            message: f.message.clone(),
        }),
        plan: t.plan.as_ref().map(|p| plan_view(&t.tenant, p, 0)),
    }
}

impl From<&RolloutEvent> for pb::RolloutEvent {
    fn from(e: &RolloutEvent) -> Self {
        let kind = match &e.kind {
            EventKind::RolloutStarted(s) => Kind::RolloutStarted(pb::RolloutStarted {
                fleet: s.fleet.clone(),
                direction: direction(s.direction),
                tenant_count: s.tenant_count,
                concurrency: s.concurrency,
                dry_run: s.dry_run,
                strategy: Some(strategy(&s.strategy)),
                waves: s.waves,
            }),
            EventKind::TenantStarted { tenant } => Kind::TenantStarted(pb::TenantStarted {
                tenant: tenant.clone(),
            }),
            EventKind::MigrationStarted(m) => Kind::MigrationStarted(pb::MigrationStarted {
                tenant: m.tenant.clone(),
                version: Some(m.version.wire()),
                name: m.name.clone(),
                direction: direction(m.direction),
                transactional: m.transactional,
            }),
            EventKind::MigrationFinished(m) => Kind::MigrationFinished(migration_finished(m)),
            EventKind::TenantFinished(t) => Kind::TenantFinished(tenant_finished(t)),
            EventKind::BackupTaken(b) => Kind::BackupTaken(pb::BackupTaken {
                tenant: b.tenant.clone(),
                backup_id: b.backup_id.clone(),
                version: send::opt(&b.version),
                before_version: Some(b.before.wire()),
                bytes: b.bytes,
                sha256: b.sha256.clone(),
                duration_ms: b.duration_ms,
            }),
            EventKind::LockRetry(r) => Kind::LockRetry(pb::LockRetry {
                tenant: r.tenant.clone(),
                version: Some(r.version.wire()),
                statement: r.statement,
                attempt: r.attempt,
                wait_ms: r.wait_ms,
                holders: r.holders.clone(),
                note: r.note.clone(),
            }),
            EventKind::SchemaDrift(d) => Kind::SchemaDrift(pb::SchemaDrift {
                tenant: d.tenant.clone(),
                version: send::opt(&d.version),
                expected_fingerprint: d.expected.clone(),
                fingerprint: d.found.clone(),
                expected_from: d.expected_from.clone(),
                diff: d.diff.iter().map(send::schema_change).collect(),
            }),
            EventKind::RolloutFinished(s) => Kind::RolloutFinished(pb::RolloutFinished {
                succeeded: s.succeeded,
                failed: s.failed,
                skipped: s.skipped,
                migrations_run: s.migrations_run,
                duration_ms: s.duration_ms,
                state: rollout_state(s.state) as i32,
                reason: s.reason.clone(),
            }),
            EventKind::WaveStarted {
                index,
                canary,
                tenant_count,
            } => Kind::WaveStarted(pb::WaveStarted {
                index: *index,
                canary: *canary,
                tenant_count: *tenant_count,
            }),
            EventKind::StateChanged { state, by, reason } => {
                Kind::StateChanged(pb::RolloutStateChanged {
                    state: rollout_state(*state) as i32,
                    by: by.clone(),
                    reason: reason.clone(),
                })
            }
        };
        Self {
            rollout_id: e.rollout_id.clone(),
            seq: e.seq,
            at_unix_ms: e.at_unix_ms,
            kind: Some(kind),
        }
    }
}
