//! What the daemon reports when it is observed (a metrics scrape): each fleet's health from
//! its tenants' last-known state, rollouts and their tenants by state, and the connection
//! budget's use. Read from memory and the control store only; no tenant is touched.

use super::{DialectKind, RolloutState, WorkState};

/// One fleet's health, counted from each tenant's last-known state.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHealth {
    /// The fleet's name.
    pub fleet: String,
    /// Its dialect.
    pub dialect: DialectKind,
    /// Tenants registered now (configured, discovered or registered through the API).
    pub tenants: u32,
    /// The set's latest version; `None` for an empty set.
    pub latest_version: Option<super::Version>,
    /// Readable tenants whose highest applied version is below `latest_version` (nothing
    /// applied counts as behind). A tenant with a failed record is usually behind too.
    pub behind: u32,
    /// Readable tenants with a `failed` or `running` record in their history table.
    pub failed: u32,
    /// Tenants whose last reading was an error (unreachable, refused, timed out).
    pub unreachable: u32,
    /// Registered tenants never read yet.
    pub unknown: u32,
    /// The fleet's `lock_timeout`, seconds: what lock waits are compared with.
    pub lock_timeout_s: f64,
    /// Its migration set does not load: the fleet is broken (the daemon serves the others).
    pub broken: bool,
    /// Tenants whose last census put them in a drift class.
    pub drifted: u32,
}

/// How much of the connection budget (`max_connections`) is used, daemon-wide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetUse {
    /// `max_connections`: connections the daemon may hold open at once.
    pub limit: u32,
    /// Connections open now, in use or idle in a pool.
    pub open: u32,
    /// Connections admitted to running operations now (in use or about to be).
    pub in_use: u32,
    /// Operations waiting for admission now.
    pub waiting: u32,
}

/// A count of rollouts of one fleet in one state, as the control store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutCount {
    /// The fleet.
    pub fleet: String,
    /// The rollouts' state.
    pub state: RolloutState,
    /// How many.
    pub count: u32,
}

/// A count of tenants of unfinished (pending, running or paused) rollouts of one fleet in
/// one work state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCount {
    /// The fleet.
    pub fleet: String,
    /// The tenants' work state.
    pub state: WorkState,
    /// How many.
    pub count: u32,
}

/// Everything one observation reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Every configured fleet's health.
    pub fleets: Vec<FleetHealth>,
    /// Rollouts per fleet and state (every rollout the control store keeps).
    pub rollouts: Vec<RolloutCount>,
    /// Tenants of unfinished rollouts per fleet and work state.
    pub rollout_tenants: Vec<WorkCount>,
    /// The connection budget's use.
    pub budget: BudgetUse,
}
