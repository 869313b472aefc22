//! `--output json`: stable snake_case documents, enums as lowercase strings.

use avocet_client::{
    VersionField,
    pb::{self, rollout_event::Kind},
};
use serde_json::{Value, json};

/// A version as the `version` key of a record, a step or an event shows it: the integer,
/// 0 for a dotted version or a repeatable (whose `version_text` alone says it).
fn int(v: &Option<pb::Version>) -> i64 {
    v.int().unwrap_or_default()
}

/// A version list's integer key: its integer versions; the `_text` key has every one.
fn ints(versions: &[pb::Version]) -> Vec<i64> {
    versions.iter().filter_map(pb::Version::as_i64).collect()
}

/// A version list's `_text` key: every version as the set writes it, in order.
fn texts(versions: &[pb::Version]) -> Vec<String> {
    versions.iter().map(ToString::to_string).collect()
}

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
        "version": d.version.int(),
        "version_text": d.version.text(),
        "message": d.message,
    })
}

fn tenant_plan(p: &pb::TenantPlan) -> Value {
    json!({
        "tenant": p.tenant,
        "current_version": p.current_version.int(),
        "current_version_text": p.current_version.text(),
        "blocked": p.blocked,
        "steps": p.steps.iter().map(|s| json!({
            "version": int(&s.version),
            "version_text": s.version.text(),
            "name": s.name,
            "direction": direction(s.direction),
            "checksum": s.checksum,
            "transactional": s.transactional,
            "statements": s.statements,
            "script_checksum": s.script_checksum,
        })).collect::<Vec<_>>(),
        "wave": p.wave,
        "diagnostics": p.diagnostics.iter().map(diagnostic).collect::<Vec<_>>(),
    })
}

pub(crate) fn plan(resp: &pb::PlanResponse) -> Value {
    json!({
        "fleet": resp.fleet,
        "set_digest": resp.set_digest,
        "tenant_count": resp.tenant_count,
        "waves": resp.waves.iter().map(|w| json!({
            "index": w.index,
            "canary": w.canary,
            "tenant_count": w.tenant_count,
            "first_tenant": w.first_tenant,
            "last_tenant": w.last_tenant,
        })).collect::<Vec<_>>(),
        "tenants": resp.tenants.iter().map(tenant_plan).collect::<Vec<_>>(),
        "findings": resp.findings.iter().map(|f| json!({
            "version": int(&f.version),
            "version_text": f.version.text(),
            "name": f.name,
            "direction": direction(f.direction),
            "code": f.code,
            "kind": f.kind,
            "line": f.line,
            "message": f.message,
            "allowed": f.allowed,
        })).collect::<Vec<_>>(),
        "set_warnings": resp.set_warnings,
        "scripts": resp.scripts,
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
                "version": int(&m.version),
                "version_text": m.version.text(),
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
                    "version": int(&m.version),
                    "version_text": m.version.text(),
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
                    "current_version": t.current_version.int(),
                    "current_version_text": t.current_version.text(),
                    "error": t.error.as_ref().map(|e| json!({
                        "code": e.code, "version": e.version.int(), "version_text": e.version.text(),
                        "message": e.message,
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
                "state": state(f.state),
                "reason": f.reason,
            }),
        ),
        Some(Kind::WaveStarted(w)) => (
            "wave_started",
            json!({ "index": w.index, "canary": w.canary, "tenant_count": w.tenant_count }),
        ),
        Some(Kind::StateChanged(c)) => (
            "state_changed",
            json!({ "state": state(c.state), "by": c.by, "reason": c.reason }),
        ),
        Some(Kind::LockRetry(r)) => (
            "lock_retry",
            json!({
                "tenant": r.tenant,
                "version": r.version.text(),
                "statement": r.statement,
                "attempt": r.attempt,
                "wait_ms": r.wait_ms,
                "holders": r.holders,
                "note": r.note,
            }),
        ),
        Some(Kind::BackupTaken(b)) => (
            "backup_taken",
            json!({
                "tenant": b.tenant,
                "backup_id": b.backup_id,
                "version": b.version.text(),
                "before_version": b.before_version.text(),
                "bytes": b.bytes,
                "sha256": b.sha256,
                "duration_ms": b.duration_ms,
            }),
        ),
        Some(Kind::SchemaDrift(d)) => (
            "schema_drift",
            json!({
                "tenant": d.tenant,
                "version": d.version.text(),
                "expected_fingerprint": d.expected_fingerprint,
                "fingerprint": d.fingerprint,
                "expected_from": d.expected_from,
                "diff": d.diff.iter().map(|c| json!({
                    "object": c.object, "change": c.change, "detail": c.detail,
                })).collect::<Vec<_>>(),
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
            "current_version": t.current_version.int(),
            "current_version_text": t.current_version.text(),
            "pending": t.pending,
            "diagnostics": t.diagnostics.iter().map(diagnostic).collect::<Vec<_>>(),
            "schema": t.schema.as_ref().map(|s| json!({
                "fingerprint": s.fingerprint,
                "expected": s.expected,
                "basis": s.basis,
                "diff": s.diff.iter().map(|d| json!({
                    "object": d.object, "change": d.change, "detail": d.detail,
                })).collect::<Vec<_>>(),
            })),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn status(resp: &pb::StatusResponse) -> Value {
    json!({
        "fleet": resp.fleet,
        "latest_version": resp.latest_version.int(),
        "latest_version_text": resp.latest_version.text(),
        "tenant_count": resp.tenant_count,
        "unknown": resp.unknown,
        "oldest_read_at_unix_ms": resp.oldest_read_at_unix_ms,
        "up_to_date": resp.up_to_date,
        "pending": resp.pending,
        "failed": resp.failed,
        "unreachable": resp.unreachable,
        "drifted": resp.drifted,
        "versions": resp.versions.iter().map(|v| json!({
            "version": v.version.int(), "version_text": v.version.text(), "tenants": v.tenants,
        })).collect::<Vec<_>>(),
        "tenants": resp.tenants.iter().map(|t| json!({
            "tenant": t.tenant,
            "current_version": t.current_version.int(),
            "current_version_text": t.current_version.text(),
            "pending": t.pending,
            "failed_versions": ints(&t.failed_versions),
            "failed_versions_text": texts(&t.failed_versions),
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
            "source": t.source,
            "state": (!t.state.is_empty()).then_some(&t.state),
            "pending": (!t.state.is_empty()).then_some(t.pending),
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
            "latest_version": f.latest_version.int(),
            "latest_version_text": f.latest_version.text(),
            "format": f.format,
            "migrations_dir": f.migrations_dir,
            "error": (!f.error.is_empty()).then_some(&f.error),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn repair(resp: &pb::RepairResponse) -> Value {
    json!({
        "version": int(&resp.version),
        "version_text": resp.version.text(),
        "tenants": resp.tenants.iter().map(|t| json!({
            "tenant": t.tenant,
            "previous_status": t.previous_status,
            "changed": t.changed,
            "error": (!t.error.is_empty()).then_some(&t.error),
        })).collect::<Vec<_>>(),
    })
}

fn state(s: i32) -> String {
    let name = pb::RolloutState::try_from(s)
        .unwrap_or_default()
        .as_str_name();
    self::name(name, "ROLLOUT_STATE_")
}

pub(crate) fn rollout(r: &pb::Rollout) -> Value {
    json!({
        "id": r.id,
        "fleet": r.fleet,
        "direction": direction(r.direction),
        "state": state(r.state),
        "created_by": r.created_by,
        "created_at_unix_ms": r.created_at_unix_ms,
        "created_at": super::text::rfc3339(r.created_at_unix_ms),
        "finished_at_unix_ms": r.finished_at_unix_ms,
        "finished_at": r.finished_at_unix_ms.map(super::text::rfc3339),
        "dry_run": r.dry_run,
        "tenant_count": r.tenant_count,
        "succeeded": r.succeeded,
        "failed": r.failed,
        "skipped": r.skipped,
        "pending": r.pending,
        "migrations_run": r.migrations_run,
        "last_seq": r.last_seq,
        "waves": r.waves,
        "strategy": r.strategy.as_ref().map(|s| json!({
            "canary": s.canary,
            "wave_size": s.wave_size,
            "concurrency": s.concurrency,
            "per_host_concurrency": s.per_host_concurrency,
            "max_failures": s.max_failures,
            "pause_between_waves_ms": s.pause_between_waves_ms,
        })),
        "audit": r.audit.iter().map(|a| json!({
            "at_unix_ms": a.at_unix_ms,
            "at": super::text::rfc3339(a.at_unix_ms),
            "method": a.method,
            "caller": a.caller,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn rollouts(rs: &[pb::Rollout]) -> Value {
    json!({ "rollouts": rs.iter().map(rollout).collect::<Vec<_>>() })
}

pub(crate) fn history(resp: &pb::HistoryResponse) -> Value {
    json!({
        "tenant": resp.tenant,
        "current_version": resp.current_version.int(),
        "current_version_text": resp.current_version.text(),
        "pending_versions": ints(&resp.pending_versions),
        "pending_versions_text": texts(&resp.pending_versions),
        "records": resp.records.iter().map(|r| json!({
            "version": int(&r.version),
            "version_text": r.version.text(),
            "name": r.name,
            "status": r.status,
            "batch": r.batch,
            "checksum": r.checksum,
            "statements_done": r.statements_done,
            "statements_total": r.statements_total,
            "error": (!r.error.is_empty()).then_some(&r.error),
            "direction": direction(r.direction),
            "drift": r.drift,
            "down_checksum": r.down_checksum,
            "down_drift": r.down_drift,
            "missing": r.missing,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn baseline(resp: &pb::BaselineResponse) -> Value {
    json!({
        "tenants": resp.tenants.iter().map(|t| json!({
            "tenant": t.tenant,
            "baselined": t.baselined,
            "error": (!t.error.is_empty()).then_some(&t.error),
            "has_history": t.has_history,
            "has_history": t.has_history,
        })).collect::<Vec<_>>(),
    })
}
