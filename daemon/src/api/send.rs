//! Domain values to their `avocet.v1` wire form: the one conversion out.

use avocet_proto::v1::{self as pb, rollout_event::Kind};

use crate::{
    engine::{FleetInfo, FleetPlan, FleetStatus, FleetVerification, RepairOutcome, TenantInfo},
    model::{
        Diagnostic, Direction, EventKind, MigrationFinished, Plan, RecordStatus, RolloutEvent,
        Severity, TenantFinished, TenantOutcome,
    },
};

fn direction(d: Direction) -> i32 {
    match d {
        Direction::Up => pb::Direction::Up as i32,
        Direction::Down => pb::Direction::Down as i32,
    }
}

fn diagnostic(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Warning => pb::Severity::Warning,
            Severity::Error => pb::Severity::Error,
        } as i32,
        code: d.code.as_str().to_owned(),
        version: d.version,
        message: d.message.clone(),
    }
}

/// One tenant's plan, with each step's SQL.
fn tenant_plan(tenant: &str, plan: &Plan) -> pb::TenantPlan {
    pb::TenantPlan {
        tenant: tenant.to_owned(),
        current_version: plan.current_version,
        steps: plan
            .steps
            .iter()
            .map(|s| pb::PlannedStep {
                version: s.migration.version,
                name: s.migration.name.clone(),
                direction: direction(s.direction),
                checksum: s.migration.up.checksum.clone(),
                transactional: s.transactional,
                statements: s.script().statement_count() as u32,
                sql: s.script().sql.clone(),
            })
            .collect(),
        diagnostics: plan.diagnostics.iter().map(diagnostic).collect(),
        blocked: plan.blocked(),
    }
}

impl From<&FleetPlan> for pb::PlanResponse {
    fn from(p: &FleetPlan) -> Self {
        Self {
            fleet: p.fleet.clone(),
            tenants: p
                .tenants
                .iter()
                .map(|t| tenant_plan(&t.tenant, &t.plan))
                .collect(),
            set_digest: p.set_digest.0.clone(),
        }
    }
}

impl From<&FleetVerification> for pb::VerifyResponse {
    fn from(v: &FleetVerification) -> Self {
        Self {
            fleet: v.fleet.clone(),
            tenants: v
                .tenants
                .iter()
                .map(|t| pb::TenantVerification {
                    tenant: t.tenant.clone(),
                    current_version: t.current_version,
                    pending: t.pending,
                    ok: t.diagnostics.is_empty(),
                    diagnostics: t.diagnostics.iter().map(diagnostic).collect(),
                })
                .collect(),
        }
    }
}

impl From<&FleetStatus> for pb::StatusResponse {
    fn from(s: &FleetStatus) -> Self {
        Self {
            fleet: s.fleet.clone(),
            latest_version: s.latest_version,
            tenant_count: s.tenant_count,
            versions: s
                .versions
                .iter()
                .map(|&(version, tenants)| pb::VersionCount { version, tenants })
                .collect(),
            up_to_date: s.up_to_date,
            pending: s.pending,
            failed: s.failed,
            unreachable: s.unreachable,
            tenants: s
                .tenants
                .iter()
                .map(|t| pb::TenantStatus {
                    tenant: t.tenant.clone(),
                    current_version: t.current_version,
                    pending: t.pending,
                    failed_versions: t.failed_versions.clone(),
                    error: t.error.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl From<&RepairOutcome> for pb::RepairResponse {
    fn from(r: &RepairOutcome) -> Self {
        Self {
            tenant: r.tenant.clone(),
            version: r.version,
            previous_status: r.previous.to_string(),
        }
    }
}

impl From<&FleetInfo> for pb::FleetInfo {
    fn from(f: &FleetInfo) -> Self {
        Self {
            name: f.name.clone(),
            dialect: f.dialect.as_str().to_owned(),
            tenant_count: f.tenant_count,
            migration_count: f.migration_count,
            latest_version: f.latest_version,
        }
    }
}

impl From<&TenantInfo> for pb::TenantInfo {
    fn from(t: &TenantInfo) -> Self {
        Self {
            id: t.id.clone(),
            labels: t.labels.clone().into_iter().collect(),
            schema: t.schema.clone().unwrap_or_default(),
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
        version: m.version,
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
        current_version: t.current_version,
        error: t.error.as_ref().map(|f| pb::TenantError {
            code: f.code.as_str().to_owned(),
            version: f.version,
            message: f.message.clone(),
        }),
        plan: t.plan.as_ref().map(|p| tenant_plan(&t.tenant, p)),
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
            }),
            EventKind::TenantStarted { tenant } => Kind::TenantStarted(pb::TenantStarted {
                tenant: tenant.clone(),
            }),
            EventKind::MigrationStarted(m) => Kind::MigrationStarted(pb::MigrationStarted {
                tenant: m.tenant.clone(),
                version: m.version,
                name: m.name.clone(),
                direction: direction(m.direction),
                transactional: m.transactional,
            }),
            EventKind::MigrationFinished(m) => Kind::MigrationFinished(migration_finished(m)),
            EventKind::TenantFinished(t) => Kind::TenantFinished(tenant_finished(t)),
            EventKind::RolloutFinished(s) => Kind::RolloutFinished(pb::RolloutFinished {
                succeeded: s.succeeded,
                failed: s.failed,
                skipped: s.skipped,
                migrations_run: s.migrations_run,
                duration_ms: s.duration_ms,
            }),
        };
        Self {
            rollout_id: e.rollout_id.to_string(),
            seq: e.seq,
            at_unix_ms: e.at_unix_ms,
            kind: Some(kind),
        }
    }
}
