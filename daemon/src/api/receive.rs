//! Wire requests to engine requests, validated on receipt (`TryFrom`). A field that does not
//! make sense on its own is an `InvalidArgument` here; what needs the fleet (a target
//! version, the set's digest) is checked by the engine.

use avocet_proto::v1 as pb;

use super::ApiError;
use crate::{
    engine::{
        ApplyRequest, LabelSelector, PlanRequest, ReadRequest, RepairRequest, RollbackRequest,
        Selector,
    },
    model::{RecordStatus, RollbackTarget, SetDigest, TransactionMode},
};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(message.into())
}

/// A tenant selector: ids as given, labels in Kubernetes label-selector syntax.
fn selector(sel: Option<pb::TenantSelector>) -> Result<Selector, ApiError> {
    let sel = sel.unwrap_or_default();
    let labels = LabelSelector::parse(&sel.labels).map_err(|e| invalid(e.to_string()))?;
    Ok(Selector {
        ids: sel.tenant_ids,
        labels,
    })
}

/// Unspecified means the fleet's own mode.
fn transaction(mode: i32) -> Result<Option<TransactionMode>, ApiError> {
    match pb::TransactionMode::try_from(mode) {
        Ok(pb::TransactionMode::Unspecified) => Ok(None),
        Ok(pb::TransactionMode::Migration) => Ok(Some(TransactionMode::Migration)),
        Ok(pb::TransactionMode::Tenant) => Ok(Some(TransactionMode::Tenant)),
        Err(_) => Err(invalid(format!(
            "transaction {mode} is not a transaction mode"
        ))),
    }
}

/// `0` means the fleet's own concurrency.
fn concurrency(requested: u32) -> Option<usize> {
    (requested > 0).then_some(requested as usize)
}

impl TryFrom<pb::PlanRequest> for PlanRequest {
    type Error = ApiError;

    fn try_from(req: pb::PlanRequest) -> Result<Self, ApiError> {
        Ok(Self {
            fleet: req.fleet,
            selector: selector(req.selector)?,
            target: req.target_version,
            allow_out_of_order: req.allow_out_of_order,
        })
    }
}

impl TryFrom<pb::ApplyRequest> for ApplyRequest {
    type Error = ApiError;

    fn try_from(req: pb::ApplyRequest) -> Result<Self, ApiError> {
        let digest = req.expected_set_digest;
        let well_formed = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !digest.is_empty() && !well_formed {
            return Err(invalid(format!(
                "expected_set_digest must be 64 hex characters, not {digest:?}"
            )));
        }
        Ok(Self {
            plan: PlanRequest {
                fleet: req.fleet,
                selector: selector(req.selector)?,
                target: req.target_version,
                allow_out_of_order: req.allow_out_of_order,
            },
            concurrency: concurrency(req.concurrency),
            dry_run: req.dry_run,
            stop_on_first_failure: req.stop_on_first_failure,
            transaction: transaction(req.transaction)?,
            expected_set_digest: (!digest.is_empty())
                .then(|| SetDigest(digest.to_ascii_lowercase())),
        })
    }
}

impl TryFrom<pb::RollbackRequest> for RollbackRequest {
    type Error = ApiError;

    fn try_from(req: pb::RollbackRequest) -> Result<Self, ApiError> {
        use pb::rollback_request::Target;
        let target = match req.target {
            None => RollbackTarget::Steps(1),
            Some(Target::Steps(0)) => return Err(invalid("steps must be at least 1")),
            Some(Target::Steps(n)) => RollbackTarget::Steps(n),
            Some(Target::ToVersion(v)) if v < 0 => {
                return Err(invalid(format!(
                    "to_version must be 0 or a version, not {v}"
                )));
            }
            Some(Target::ToVersion(v)) => RollbackTarget::ToVersion(v),
            Some(Target::LastBatch(true)) => RollbackTarget::LastBatch,
            Some(Target::LastBatch(false)) => {
                return Err(invalid("last_batch must be true when set"));
            }
        };
        Ok(Self {
            fleet: req.fleet,
            selector: selector(req.selector)?,
            target,
            concurrency: concurrency(req.concurrency),
            dry_run: req.dry_run,
            stop_on_first_failure: req.stop_on_first_failure,
            transaction: transaction(req.transaction)?,
        })
    }
}

/// `Verify` and `Status` ask the same: a fleet and a selector.
macro_rules! read_request {
    ($($wire:ty),+) => {$(
        impl TryFrom<$wire> for ReadRequest {
            type Error = ApiError;

            fn try_from(req: $wire) -> Result<Self, ApiError> {
                Ok(Self {
                    fleet: req.fleet,
                    selector: selector(req.selector)?,
                })
            }
        }
    )+};
}

read_request!(pb::VerifyRequest, pb::StatusRequest);

impl TryFrom<pb::RepairRequest> for RepairRequest {
    type Error = ApiError;

    fn try_from(req: pb::RepairRequest) -> Result<Self, ApiError> {
        let mark = match pb::RepairAction::try_from(req.action) {
            Ok(pb::RepairAction::MarkApplied) => RecordStatus::Applied,
            Ok(pb::RepairAction::MarkRolledBack) => RecordStatus::RolledBack,
            _ => return Err(invalid("action must be MARK_APPLIED or MARK_ROLLED_BACK")),
        };
        if req.tenant.is_empty() {
            return Err(invalid("tenant is required"));
        }
        Ok(Self {
            fleet: req.fleet,
            tenant: req.tenant,
            version: req.version,
            mark,
        })
    }
}

/// `ListTenants`: the fleet and selector.
pub(super) fn list_tenants(req: pb::ListTenantsRequest) -> Result<(String, Selector), ApiError> {
    if req.fleet.is_empty() {
        return Err(invalid("fleet is required"));
    }
    Ok((req.fleet, selector(req.selector)?))
}
