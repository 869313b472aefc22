//! Domain values to their `avocet.v1` wire form: the one conversion out.

use std::collections::HashMap;

use avocet_proto::v1 as pb;

use crate::{
    engine::{
        DriftClass, FleetCensus, FleetInfo, FleetPlan, FleetStatus, FleetVerification,
        RepairOutcome, TenantHistory, TenantInfo,
    },
    model::{
        Diagnostic, Direction, LintKind, Migration, MigrationKey, Plan, PlanView, Script, Severity,
        Version,
    },
};

/// What goes on the wire as an `avocet.v1.Version` message: a numbered [`Version`] or a
/// migration's [`MigrationKey`].
pub(super) trait Wire {
    /// The one conversion out: an integer as `number`, a dotted version as `text`
    /// (`1.2.3`, as the set writes it), a repeatable as `repeatable` (its description,
    /// `views` for `R__views`).
    fn wire(&self) -> pb::Version;
}

impl Wire for Version {
    fn wire(&self) -> pb::Version {
        use pb::version::V;
        let v = match self.as_i64() {
            Some(n) => V::Number(n),
            None => V::Text(self.to_string()),
        };
        pb::Version { v: Some(v) }
    }
}

impl Wire for MigrationKey {
    fn wire(&self) -> pb::Version {
        match self {
            Self::Versioned(v) => v.wire(),
            Self::Repeatable(name) => pb::Version {
                v: Some(pb::version::V::Repeatable(name.to_string())),
            },
        }
    }
}

/// A version field: [`Wire::wire`], unset for none.
pub(super) fn opt(v: &Option<impl Wire>) -> Option<pb::Version> {
    v.as_ref().map(Wire::wire)
}

/// A version list, every version in order.
pub(super) fn versions(versions: &[impl Wire]) -> Vec<pb::Version> {
    versions.iter().map(Wire::wire).collect()
}

pub(super) fn direction(d: Direction) -> i32 {
    match d {
        Direction::Up => pb::Direction::Up as i32,
        Direction::Down => pb::Direction::Down as i32,
    }
}

pub(super) fn diagnostic(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Warning => pb::Severity::Warning,
            Severity::Error => pb::Severity::Error,
        } as i32,
        code: d.code.as_str().to_owned(),
        version: opt(&d.version),
        message: d.message.clone(),
    }
}

/// One tenant's plan from a [`PlanView`]: every step's checksums, no SQL (an event's plan;
/// the scripts are the set's, by checksum).
pub(super) fn plan_view(tenant: &str, plan: &PlanView, wave: u32) -> pb::TenantPlan {
    pb::TenantPlan {
        tenant: tenant.to_owned(),
        current_version: opt(&plan.current_version),
        steps: plan
            .steps
            .iter()
            .map(|s| pb::PlannedStep {
                version: Some(s.version.wire()),
                name: s.name.clone(),
                direction: direction(s.direction),
                checksum: s.checksum.clone(),
                transactional: s.transactional,
                statements: s.statements,
                sql: String::new(),
                script_checksum: s.script_checksum.clone(),
            })
            .collect(),
        diagnostics: plan.diagnostics.iter().map(diagnostic).collect(),
        blocked: plan.blocked(),
        wave,
    }
}

/// One tenant's plan, its scripts added to `scripts` once each by checksum, and their
/// lint findings to `findings` the first time a script is seen.
fn tenant_plan(
    tenant: &str,
    plan: &Plan,
    wave: u32,
    scripts: &mut HashMap<String, String>,
    findings: &mut Vec<(MigrationKey, pb::LintFinding)>,
) -> pb::TenantPlan {
    for step in &plan.steps {
        let script = step.script();
        if scripts.contains_key(&script.checksum) {
            continue;
        }
        scripts.insert(script.checksum.clone(), script.sql.clone());
        script_findings(&step.migration, script, step.direction, findings);
    }
    plan_view(tenant, &PlanView::from(plan), wave)
}

/// Adds what the lint found in `script` (of `migration`, run `towards`) to `findings`.
fn script_findings(
    migration: &Migration,
    script: &Script,
    towards: Direction,
    findings: &mut Vec<(MigrationKey, pb::LintFinding)>,
) {
    findings.extend(script.findings.iter().map(|f| {
        let finding = pb::LintFinding {
            version: Some(migration.version.wire()),
            name: migration.name.clone(),
            code: f.code.as_str().to_owned(),
            kind: match f.code.kind() {
                LintKind::Destructive => "destructive",
                LintKind::DataRewrite => "data_rewrite",
                LintKind::LockHazard => "lock_hazard",
                LintKind::Note => "note",
            }
            .to_owned(),
            line: f.line,
            message: f.code.why().to_owned(),
            allowed: script.allow_destructive,
            direction: direction(towards),
            id: f.code.id().to_owned(),
            blocks: f.blocks,
        };
        (migration.version.clone(), finding)
    }));
}

impl From<&FleetPlan> for pb::PlanResponse {
    fn from(p: &FleetPlan) -> Self {
        let mut scripts = HashMap::new();
        let mut findings = Vec::new();
        let tenants = p
            .tenants
            .iter()
            .map(|t| tenant_plan(&t.tenant, &t.plan, t.wave, &mut scripts, &mut findings))
            .collect();
        // A new tenant may start from a baseline: its findings count too.
        for m in p
            .whole_set
            .iter()
            .flat_map(|set| set.baselines().chain(set.iter()))
        {
            script_findings(m, &m.up, Direction::Up, &mut findings);
        }
        findings.sort_by_key(|(version, f)| (version.clone(), f.direction, f.line));
        Self {
            fleet: p.fleet.clone(),
            tenants,
            set_digest: p.set_digest.0.clone(),
            scripts,
            waves: p
                .waves
                .iter()
                .map(|w| pb::Wave {
                    index: w.index,
                    canary: w.canary,
                    tenant_count: w.tenant_count,
                    first_tenant: w.first_tenant.clone(),
                    last_tenant: w.last_tenant.clone(),
                })
                .collect(),
            next_page_token: p.next_page.clone().unwrap_or_default(),
            tenant_count: p.tenant_count,
            findings: findings.into_iter().map(|(_, f)| f).collect(),
            set_warnings: p.set_warnings.clone(),
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
                    current_version: opt(&t.current_version),
                    pending: t.pending,
                    ok: t.diagnostics.is_empty() && t.schema.as_ref().is_none_or(|s| s.expected),
                    diagnostics: t.diagnostics.iter().map(diagnostic).collect(),
                    schema: t.schema.as_ref().map(Into::into),
                })
                .collect(),
            next_page_token: v.next_page.clone().unwrap_or_default(),
            tenant_count: v.tenant_count,
        }
    }
}

impl From<&FleetStatus> for pb::StatusResponse {
    fn from(s: &FleetStatus) -> Self {
        Self {
            fleet: s.fleet.clone(),
            latest_version: opt(&s.latest_version),
            tenant_count: s.tenant_count,
            versions: s
                .versions
                .iter()
                .map(|(version, tenants)| pb::VersionCount {
                    version: opt(version),
                    tenants: *tenants,
                })
                .collect(),
            up_to_date: s.up_to_date,
            pending: s.pending,
            failed: s.failed,
            unreachable: s.unreachable,
            unknown: s.unknown,
            oldest_read_at_unix_ms: s.oldest_read_at_unix_ms.unwrap_or_default(),
            drifted: s.drifted,
            next_page_token: s.next_page.clone().unwrap_or_default(),
            tenants: s
                .tenants
                .iter()
                .map(|t| pb::TenantStatus {
                    tenant: t.tenant.clone(),
                    current_version: opt(&t.current_version),
                    pending: t.pending,
                    failed_versions: versions(&t.failed_versions),
                    error: t.error.clone().unwrap_or_default(),
                    read_at_unix_ms: t.read_at_unix_ms.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A record status before a repair, `none` when there was no record, empty when refused.
fn previous(r: &RepairOutcome) -> String {
    match (r.previous, &r.error) {
        (_, Some(_)) => String::new(),
        (None, None) => "none".to_owned(),
        (Some(s), None) => s.to_string(),
    }
}

/// `Repair`'s answer: every tenant's outcome, the first also in the top-level fields.
pub(super) fn repair(outcomes: &[RepairOutcome]) -> pb::RepairResponse {
    let first = outcomes.first();
    pb::RepairResponse {
        tenant: first.map(|r| r.tenant.clone()).unwrap_or_default(),
        version: first.map(|r| r.version.wire()),
        previous_status: first.map(previous).unwrap_or_default(),
        tenants: outcomes
            .iter()
            .map(|r| pb::RepairResult {
                tenant: r.tenant.clone(),
                previous_status: previous(r),
                changed: r.changed,
                error: r.error.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

impl From<&FleetInfo> for pb::FleetInfo {
    fn from(f: &FleetInfo) -> Self {
        Self {
            name: f.name.clone(),
            dialect: f.dialect.as_str().to_owned(),
            tenant_count: f.tenant_count,
            migration_count: f.migration_count,
            latest_version: opt(&f.latest_version),
            destructive_versions: versions(&f.destructive_versions),
            migrations_dir: f.migrations_dir.display().to_string(),
            format: f.format.as_str().to_owned(),
            error: f.error.clone().unwrap_or_default(),
        }
    }
}

impl From<&TenantInfo> for pb::TenantInfo {
    fn from(t: &TenantInfo) -> Self {
        Self {
            id: t.id.clone(),
            labels: t.labels.clone().into_iter().collect(),
            schema: t.schema.clone().unwrap_or_default(),
            source: t.source.as_str().to_owned(),
            state: t.state.as_ref().map_or("", |c| c.class.as_str()).to_owned(),
            pending: t.state.as_ref().map_or(0, |c| c.pending),
        }
    }
}

/// One tenant's history as `History` answers it.
impl From<&TenantHistory> for pb::HistoryResponse {
    fn from(h: &TenantHistory) -> Self {
        Self {
            tenant: h.tenant.clone(),
            current_version: opt(&h.current_version),
            records: h
                .records
                .iter()
                .map(|r| pb::HistoryEntry {
                    version: Some(r.version.wire()),
                    name: r.name.clone(),
                    status: r.status.as_str().to_owned(),
                    batch: r.batch,
                    checksum: r.checksum.clone(),
                    statements_done: r.statements_done,
                    statements_total: r.statements_total,
                    error: r.error.clone().unwrap_or_default(),
                    direction: direction(r.direction),
                    drift: h.drifted.contains(&r.version),
                    down_checksum: r.down_checksum.clone(),
                    down_drift: h.down_drifted.contains(&r.version),
                    missing: h.missing.contains(&r.version),
                })
                .collect(),
            pending_versions: versions(&h.pending),
        }
    }
}

/// One line of a schema diff.
pub(super) fn schema_change(d: &crate::model::SchemaChange) -> pb::SchemaChange {
    pb::SchemaChange {
        object: d.object.clone(),
        change: d.change.clone(),
        detail: d.detail.clone(),
    }
}

impl From<&DriftClass> for pb::DriftClass {
    fn from(c: &DriftClass) -> Self {
        pb::DriftClass {
            version: opt(&c.version),
            fingerprint: c.fingerprint.clone(),
            expected: c.expected,
            tenants: c.tenants.clone(),
            diff: c.diff.iter().map(schema_change).collect(),
            basis: c.basis.to_owned(),
        }
    }
}

impl From<&FleetCensus> for pb::CensusResult {
    fn from(c: &FleetCensus) -> Self {
        pb::CensusResult {
            fleet: c.fleet.clone(),
            tenants: c.tenants,
            classes: c.classes.iter().map(Into::into).collect(),
            unreadable: c
                .unreadable
                .iter()
                .map(|(tenant, error)| pb::CensusUnreadable {
                    tenant: tenant.clone(),
                    error: error.clone(),
                })
                .collect(),
            focus: c.focus.as_ref().map(Into::into),
            model_json: String::new(),
        }
    }
}
