//! Plan, Verify and Status: many tenants' history tables read concurrently, then planned
//! or summarised. Reads create nothing on a tenant.

use std::{collections::BTreeMap, sync::Arc};

use futures::{StreamExt, stream};

use super::{FleetStatus, TenantPlan, TenantStatus, TenantVerification};
use crate::{
    dialect::DbError,
    fleet::Tenant,
    model::{ApplyOptions, Diagnostic, DialectKind, HistoryRecord, MigrationSet, Plan},
    plan,
};

/// Tenants read at once by one request. The connection budget's admission is the real
/// bound (a read takes one ticket); this only bounds the reads in flight.
const READS_IN_FLIGHT: usize = 64;

/// Each tenant's history (or why it could not be read), in the order given, reading up to
/// [`READS_IN_FLIGHT`] tenants at once within the connection budget.
pub(super) async fn histories(
    tenants: Vec<Arc<Tenant>>,
) -> Vec<(Arc<Tenant>, Result<Vec<HistoryRecord>, DbError>)> {
    stream::iter(tenants)
        .map(|tenant| async move {
            let result = tenant.read_history().await;
            (tenant, result)
        })
        .buffered(READS_IN_FLIGHT)
        .collect()
        .await
}

/// One tenant's apply plan; an unreachable tenant gets a blocked plan saying why.
pub(super) fn tenant_plan(
    tenant: &Tenant,
    history: Result<Vec<HistoryRecord>, DbError>,
    set: &MigrationSet,
    opts: ApplyOptions,
    dialect: DialectKind,
) -> TenantPlan {
    let plan = match history {
        Ok(h) => plan::plan_apply(set, &h, opts, dialect),
        Err(e) => Plan::unreachable(&e.to_string()),
    };
    TenantPlan {
        tenant: tenant.id.clone(),
        plan,
    }
}

/// One tenant's history compared with the set.
pub(super) fn verification(
    tenant: &Tenant,
    history: Result<Vec<HistoryRecord>, DbError>,
    set: &MigrationSet,
    dialect: DialectKind,
) -> TenantVerification {
    let (current_version, pending, diagnostics) = match history {
        Ok(h) => (
            plan::current_version(&h),
            plan::pending(set, &h, None).count() as u32,
            plan::check_history(set, &h, dialect),
        ),
        Err(e) => (None, 0, vec![Diagnostic::unreachable(&e.to_string())]),
    };
    TenantVerification {
        tenant: tenant.id.clone(),
        current_version,
        pending,
        diagnostics,
    }
}

/// Adds one tenant's line to a fleet status and counts it in the summary.
pub(super) fn count_status(
    status: &mut FleetStatus,
    versions: &mut BTreeMap<Option<i64>, u32>,
    tenant: &Tenant,
    history: Result<Vec<HistoryRecord>, DbError>,
    set: &MigrationSet,
) {
    let mut line = TenantStatus {
        tenant: tenant.id.clone(),
        ..Default::default()
    };
    match history {
        Ok(h) => {
            line.current_version = plan::current_version(&h);
            line.pending = plan::pending(set, &h, None).count() as u32;
            line.failed_versions = h
                .iter()
                .filter(|r| r.status.needs_attention())
                .map(|r| r.version)
                .collect();
            *versions.entry(line.current_version).or_default() += 1;
            if !line.failed_versions.is_empty() {
                status.failed += 1;
            } else if line.pending > 0 {
                status.pending += 1;
            } else {
                status.up_to_date += 1;
            }
        }
        Err(e) => {
            line.error = Some(e.to_string());
            status.unreachable += 1;
        }
    }
    status.tenants.push(line);
}
