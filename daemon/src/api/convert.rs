//! Wire requests to domain values, validated on receipt.

use avocet_proto::v1 as pb;

use super::ApiError;
use crate::{
    catalog::MigrationSet,
    fleet::{LabelSelector, Selector},
    plan::RollbackTarget,
};

/// Most tenants one rollout may run at once.
pub(super) const MAX_CONCURRENCY: u32 = 1024;

pub(super) fn fleet_name(name: &str) -> Result<&str, ApiError> {
    if name.is_empty() {
        return Err(ApiError::InvalidArgument("fleet is required".into()));
    }
    Ok(name)
}

pub(super) fn selector(sel: Option<pb::TenantSelector>) -> Result<Selector, ApiError> {
    let sel = sel.unwrap_or_default();
    let labels =
        LabelSelector::parse(&sel.labels).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    Ok(Selector {
        ids: sel.tenant_ids,
        labels,
    })
}

pub(super) fn concurrency(requested: u32, default: usize) -> Result<usize, ApiError> {
    match requested {
        0 => Ok(default),
        n if n > MAX_CONCURRENCY => Err(ApiError::InvalidArgument(format!(
            "concurrency {n} is above the limit of {MAX_CONCURRENCY}"
        ))),
        n => Ok(n as usize),
    }
}

/// A target version must name a migration of the set.
pub(super) fn target_version(
    fleet: &str,
    set: &MigrationSet,
    target: Option<i64>,
) -> Result<Option<i64>, ApiError> {
    match target {
        Some(v) if set.get(v).is_none() => Err(ApiError::InvalidArgument(format!(
            "fleet {fleet:?} has no migration with version {v}"
        ))),
        t => Ok(t),
    }
}

pub(super) fn rollback_target(
    target: Option<pb::rollback_request::Target>,
) -> Result<RollbackTarget, ApiError> {
    use pb::rollback_request::Target;
    match target {
        None => Ok(RollbackTarget::Steps(1)),
        Some(Target::Steps(0)) => Err(ApiError::InvalidArgument("steps must be at least 1".into())),
        Some(Target::Steps(n)) => Ok(RollbackTarget::Steps(n)),
        Some(Target::ToVersion(v)) if v < 0 => Err(ApiError::InvalidArgument(format!(
            "to_version must be 0 or a version, not {v}"
        ))),
        Some(Target::ToVersion(v)) => Ok(RollbackTarget::ToVersion(v)),
        Some(Target::LastBatch(true)) => Ok(RollbackTarget::LastBatch),
        Some(Target::LastBatch(false)) => Err(ApiError::InvalidArgument(
            "last_batch must be true when set".into(),
        )),
    }
}
