//! The engine's requests: validated domain values, built by the API from the wire.

pub use crate::fleet::{LabelSelector, Selector};
use crate::model::{RecordStatus, RollbackTarget, SetDigest, TransactionMode};

/// Most tenants one rollout may run at once.
pub const MAX_CONCURRENCY: usize = 1024;

/// `Plan`: what an apply would run on each selected tenant.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
    /// Highest version to plan for; `None` for the latest. Must name a migration of the set.
    pub target: Option<i64>,
    /// Plan pending versions older than the newest applied one instead of refusing.
    pub allow_out_of_order: bool,
}

/// `Apply`: a rollout of pending migrations.
#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    /// The fleet, tenants, target and out-of-order rule, as for a plan.
    pub plan: PlanRequest,
    /// Tenants at once; `None` for the fleet's `concurrency`. 1 to [`MAX_CONCURRENCY`].
    pub concurrency: Option<usize>,
    /// Plan only: report what would run and touch nothing.
    pub dry_run: bool,
    /// Start no further tenant once one has failed.
    pub stop_on_first_failure: bool,
    /// One transaction per migration or per tenant; `None` for the fleet's `transaction`.
    pub transaction: Option<TransactionMode>,
    /// Refuse to start unless the fleet's set has this digest (the one a reviewed plan
    /// showed), so what runs is what was reviewed.
    pub expected_set_digest: Option<SetDigest>,
}

/// `Rollback`: a rollout of `down` scripts.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
    /// What to roll back on each tenant.
    pub target: RollbackTarget,
    /// Tenants at once; `None` for the fleet's `concurrency`. 1 to [`MAX_CONCURRENCY`].
    pub concurrency: Option<usize>,
    /// Plan only: report what would run and touch nothing.
    pub dry_run: bool,
    /// Start no further tenant once one has failed.
    pub stop_on_first_failure: bool,
    /// One transaction per migration or per tenant; `None` for the fleet's `transaction`.
    pub transaction: Option<TransactionMode>,
}

/// `Verify` and `Status`: a read of the selected tenants' history tables.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
}

/// `Repair`: rewrite a `failed` or `running` record after an operator checked the schema.
#[derive(Debug, Clone)]
pub struct RepairRequest {
    /// The fleet.
    pub fleet: String,
    /// The tenant.
    pub tenant: String,
    /// The version whose record is rewritten.
    pub version: i64,
    /// `Applied` (finished by hand) or `RolledBack` (undone by hand, so it runs again).
    pub mark: RecordStatus,
}
