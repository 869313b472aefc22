//! `--output json`: stable snake_case documents, enums as lowercase strings.

use avocet_client::pb::{self, rollout_event::Kind};
use serde_json::{Value, json};

pub(crate) fn print(value: &Value) {
    super::emit(&format!("{value}\n"));
}

/// `DIRECTION_UP` → `up`: the wire enum's name without its prefix, lowercase.
fn name(full: &str, prefix: &str) -> String {
    full.trim_start_matches(prefix).to_ascii_lowercase()
}

fn direction(d: i32) -> String {
    let d = pb::Direction::try_from(d).unwrap_or_default();
    name(d.as_str_name(), "DIRECTION_")
}

fn diagnostic(d: &pb::Diagnostic) -> Value {
    let severity = pb::Severity::try_from(d.severity).unwrap_or_default();
    json!({
        "severity": name(severity.as_str_name(), "SEVERITY_"),
        "code": d.code,
        "version": d.version,
        "message": d.message,
    })
}

fn tenant_plan(p: &pb::TenantPlan) -> Value {
    json!({
        "tenant": p.tenant,
        "current_version": p.current_version,
        "blocked": p.blocked,
        "steps": p.steps.iter().map(|s| json!({
            "version": s.version,
            "name": s.name,
            "direction": direction(s.direction),
            "checksum": s.checksum,
            "transactional": s.transactional,
            "statements": s.statements,
            "sql": s.sql,
        })).collect::<Vec<_>>(),
        "diagnostics": p.diagnostics.iter().map(diagnostic).collect::<Vec<_>>(),
    })
}

pub(crate) fn plan(resp: &pb::PlanResponse) -> Value {
    json!({
        "fleet": resp.fleet,
        "set_digest": resp.set_digest,
        "tenants": resp.tenants.iter().map(tenant_plan).collect::<Vec<_>>(),
    })
}

pub(crate) fn event(e: &pb::RolloutEvent) -> Value {
    let (kind, body) = match &e.kind {
        Some(Kind::RolloutStarted(s)) => (
            "rollout_started",
            json!({
                "fleet": s.fleet,
                "direction": direction(s.direction),
                "tenant_count": s.tenant_count,
                "concurrency": s.concurrency,
                "dry_run": s.dry_run,
            }),
        ),
        Some(Kind::TenantStarted(t)) => ("tenant_started", json!({ "tenant": t.tenant })),
        Some(Kind::MigrationStarted(m)) => (
            "migration_started",
            json!({
                "tenant": m.tenant,
                "version": m.version,
                "name": m.name,
                "direction": direction(m.direction),
                "transactional": m.transactional,
            }),
        ),
        Some(Kind::MigrationFinished(m)) => {
            let status = pb::MigrationStatus::try_from(m.status).unwrap_or_default();
            (
                "migration_finished",
                json!({
                    "tenant": m.tenant,
                    "version": m.version,
                    "name": m.name,
                    "status": name(status.as_str_name(), "MIGRATION_STATUS_"),
                    "duration_ms": m.duration_ms,
                    "statements_done": m.statements_done,
                    "statements_total": m.statements_total,
                    "error": (!m.error.is_empty()).then_some(&m.error),
                }),
            )
        }
        Some(Kind::TenantFinished(t)) => {
            let outcome = pb::TenantOutcome::try_from(t.outcome).unwrap_or_default();
            (
                "tenant_finished",
                json!({
                    "tenant": t.tenant,
                    "outcome": name(outcome.as_str_name(), "TENANT_OUTCOME_"),
                    "migrations_run": t.migrations_run,
                    "duration_ms": t.duration_ms,
                    "current_version": t.current_version,
                    "error": t.error.as_ref().map(|e| json!({
                        "code": e.code, "version": e.version, "message": e.message,
                    })),
                    "plan": t.plan.as_ref().map(tenant_plan),
                }),
            )
        }
        Some(Kind::RolloutFinished(f)) => (
            "rollout_finished",
            json!({
                "succeeded": f.succeeded,
                "failed": f.failed,
                "skipped": f.skipped,
                "migrations_run": f.migrations_run,
                "duration_ms": f.duration_ms,
            }),
        ),
        None => ("unknown", json!({})),
    };
    json!({
        "rollout_id": e.rollout_id,
        "seq": e.seq,
        "at_unix_ms": e.at_unix_ms,
        "event": kind,
        "data": body,
    })
}

pub(crate) fn verify(resp: &pb::VerifyResponse) -> Value {
    json!({
        "fleet": resp.fleet,
        "ok": resp.tenants.iter().all(|t| t.ok),
        "tenants": resp.tenants.iter().map(|t| json!({
            "tenant": t.tenant,
            "ok": t.ok,
            "current_version": t.current_version,
            "pending": t.pending,
            "diagnostics": t.diagnostics.iter().map(diagnostic).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn status(resp: &pb::StatusResponse) -> Value {
    json!({
        "fleet": resp.fleet,
        "latest_version": resp.latest_version,
        "tenant_count": resp.tenant_count,
        "up_to_date": resp.up_to_date,
        "pending": resp.pending,
        "failed": resp.failed,
        "unreachable": resp.unreachable,
        "versions": resp.versions.iter().map(|v| json!({
            "version": v.version, "tenants": v.tenants,
        })).collect::<Vec<_>>(),
        "tenants": resp.tenants.iter().map(|t| json!({
            "tenant": t.tenant,
            "current_version": t.current_version,
            "pending": t.pending,
            "failed_versions": t.failed_versions,
            "error": (!t.error.is_empty()).then_some(&t.error),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn tenants(resp: &pb::ListTenantsResponse) -> Value {
    json!({
        "fleet": resp.fleet,
        "tenants": resp.tenants.iter().map(|t| json!({
            "id": t.id,
            "labels": t.labels,
            "schema": (!t.schema.is_empty()).then_some(&t.schema),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn fleets(fleets: &[pb::FleetInfo]) -> Value {
    json!({
        "fleets": fleets.iter().map(|f| json!({
            "name": f.name,
            "dialect": f.dialect,
            "tenant_count": f.tenant_count,
            "migration_count": f.migration_count,
            "latest_version": f.latest_version,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn repair(resp: &pb::RepairResponse) -> Value {
    json!({
        "tenant": resp.tenant,
        "version": resp.version,
        "previous_status": resp.previous_status,
    })
}
