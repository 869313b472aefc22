//! Domain values in their `avocet.v1` wire form, shared by the rollout's event log and the
//! API. (Requests go the other way in `api::convert`.)

use avocet_proto::v1 as pb;

use crate::plan::{Diagnostic, Direction, Plan, Severity};

/// The wire enum of a direction.
pub fn direction(d: Direction) -> pb::Direction {
    match d {
        Direction::Up => pb::Direction::Up,
        Direction::Down => pb::Direction::Down,
    }
}

/// The wire form of a diagnostic.
pub fn diagnostic(d: &Diagnostic) -> pb::Diagnostic {
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

/// The wire form of one tenant's plan, with each step's SQL.
pub fn tenant_plan(tenant: &str, plan: &Plan) -> pb::TenantPlan {
    pb::TenantPlan {
        tenant: tenant.to_owned(),
        current_version: plan.current_version,
        steps: plan
            .steps
            .iter()
            .map(|s| pb::PlannedStep {
                version: s.migration.version,
                name: s.migration.name.clone(),
                direction: direction(s.direction) as i32,
                checksum: s.migration.up.checksum.clone(),
                transactional: s.transactional,
                statements: s.script().statements.len() as u32,
                sql: s.script().sql.clone(),
            })
            .collect(),
        diagnostics: plan.diagnostics.iter().map(diagnostic).collect(),
        blocked: plan.blocked(),
    }
}
