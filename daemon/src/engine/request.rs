//! The engine's requests: validated domain values, built by the API from the wire.

pub use crate::fleet::{LabelSelector, Selector, SelectorError};
use crate::model::{RollbackTarget, RolloutState, SetDigest, StrategyRequest, TransactionMode};

/// Most tenants one rollout may run at once.
pub const MAX_CONCURRENCY: usize = 1024;

/// Most tenants one page of Plan, Verify or Status may hold.
pub const MAX_PAGE: usize = 5000;

/// Tenants per page when a request leaves it unset.
pub const DEFAULT_PAGE: usize = 500;

/// One page of a fleet-sized answer: `size` tenants from position `offset` of the
/// selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Position of the page's first tenant in the selection, from 0.
    pub offset: usize,
    /// Tenants in the page, 1 to [`MAX_PAGE`] (0 for a Status summary alone).
    pub size: usize,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            size: DEFAULT_PAGE,
        }
    }
}

impl Page {
    /// The token of the page after this one, among `total` tenants; `None` after the last.
    pub fn next_token(&self, total: usize) -> Option<String> {
        let next = self.offset + self.size;
        (self.size > 0 && next < total).then(|| next.to_string())
    }

    /// The positions of this page among `total` tenants.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(total);
        start..(start + self.size).min(total)
    }
}

/// `Plan`: what an apply would run on each selected tenant.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
    /// Highest version to plan for; `None` for the latest. Must name a migration of the set.
    pub target: Option<crate::model::Version>,
    /// Plan pending versions older than the newest applied one instead of refusing.
    pub allow_out_of_order: bool,
    /// Accept migrations with destructive statements whose file does not say
    /// `-- avocet:allow-destructive` (without it, such a migration blocks its tenant).
    pub accept_data_loss: bool,
    /// The strategy whose waves the plan shows (over the fleet's defaults).
    pub strategy: StrategyRequest,
    /// Which selected tenants are the canaries; empty: tenants with work to do first.
    pub canary_selector: LabelSelector,
    /// Which tenants of the selection this answer holds.
    pub page: Page,
    /// A published set to plan (and apply) instead of the fleet's own: a tag's name or a
    /// digest (`None`: the fleet's set).
    pub set: Option<String>,
    /// Plan the set alone: read no tenant, and answer the `up` findings of every migration
    /// and baseline
    /// ([`crate::engine::FleetPlan::whole_set`]). Ignored by an apply.
    pub set_only: bool,
}

/// `Apply`: a rollout of pending migrations.
#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    /// The fleet, tenants, target, out-of-order rule and strategy, as for a plan (its
    /// page is ignored).
    pub plan: PlanRequest,
    /// Plan only: report what would run and touch nothing.
    pub dry_run: bool,
    /// One transaction per migration or per tenant; `None` for the fleet's `transaction`.
    pub transaction: Option<TransactionMode>,
    /// Refuse to start unless the fleet's set has this digest (the one a reviewed plan
    /// showed), so what runs is what was reviewed.
    pub expected_set_digest: Option<SetDigest>,
    /// Refuse each tenant whose schema is not the expected one for its version (the
    /// fingerprint recorded at apply time, else the last census's expected class),
    /// reporting it `drifted`, and run the rest.
    pub require_expected_schema: bool,
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
    /// Run `down` scripts that destroy data (the lint's destructive findings) even when their
    /// file does not say `-- avocet:allow-destructive`.
    pub accept_data_loss: bool,
    /// Waves, concurrency, failure threshold (over the fleet's defaults).
    pub strategy: StrategyRequest,
    /// Plan only: report what would run and touch nothing.
    pub dry_run: bool,
    /// One transaction per migration or per tenant; `None` for the fleet's `transaction`.
    pub transaction: Option<TransactionMode>,
}

/// `Verify`: a read of the selected tenants' history tables, one page at a time.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
    /// Which tenants of the selection this answer holds.
    pub page: Page,
    /// Verify only: also read each tenant's schema and compare it with the expected one
    /// for its version, as a census of the page would (docs/census.md).
    pub schema: bool,
}

/// `Status`: a fleet summary from last-known state, or read afresh.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    /// The fleet and selection, and the page of per-tenant lines (`size` 0: none).
    pub read: ReadRequest,
    /// Read every selected tenant afresh instead of answering from last-known state.
    pub refresh: bool,
    /// Per-tenant deadline of a refresh.
    pub refresh_timeout: std::time::Duration,
}

/// `Rollouts.List`: which rollouts, one page at a time.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Only this fleet's.
    pub fleet: Option<String>,
    /// Only rollouts in this state.
    pub state: Option<RolloutState>,
    /// At most this many, 1 to 1000.
    pub limit: u32,
    /// The previous page's `next_page_token`.
    pub page_token: Option<String>,
}
