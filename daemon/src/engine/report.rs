//! What the engine's read operations answer, per fleet and per tenant.

use std::{collections::BTreeMap, sync::Arc};

pub use crate::fleet::TenantSource;
use crate::model::{Diagnostic, DialectKind, MigrationSet, Plan, SetDigest};

/// One configured fleet.
#[derive(Debug, Clone)]
pub struct FleetInfo {
    /// Its name.
    pub name: String,
    /// Its dialect.
    pub dialect: DialectKind,
    /// Tenants, from every source.
    pub tenant_count: u32,
    /// Migrations in its set.
    pub migration_count: u32,
    /// The set's highest version.
    pub latest_version: Option<crate::model::Version>,
    /// Migrations (keys: a repeatable's too) whose up script destroys data, ascending.
    pub destructive_versions: Vec<crate::model::MigrationKey>,
    /// The set's directory, absolute when it can be resolved.
    pub migrations_dir: std::path::PathBuf,
    /// The set's layout as read (`sqlx`, `diesel`, …; detected when configured `auto`).
    pub format: crate::model::SetFormat,
    /// Why its set does not load, naming the file: the fleet is broken (its counts and
    /// versions are then empty). `None` while it loads.
    pub error: Option<String>,
}

/// One tenant of a fleet.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its PostgreSQL schema (schema-per-tenant fleets).
    pub schema: Option<String>,
    /// Where it comes from.
    pub source: TenantSource,
    /// Its last-known state against the current set (`ListTenants` only).
    pub state: Option<crate::model::Classification>,
}

/// `Plan`'s answer.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// The fleet.
    pub fleet: String,
    /// The digest of the set planned with; pass it to apply as `expected_set_digest`.
    pub set_digest: SetDigest,
    /// One plan per tenant of the page, in selection order. An unreachable tenant's plan
    /// has no steps and an `unreachable` error.
    pub tenants: Vec<TenantPlan>,
    /// The waves a rollout with the request's strategy would run.
    pub waves: Vec<WaveInfo>,
    /// Tenants selected in all pages.
    pub tenant_count: u32,
    /// The next page's token; `None` on the last page.
    pub next_page: Option<String>,
    /// What loading the set noticed, e.g. files that look like migrations but are not read.
    pub set_warnings: Vec<String>,
    /// The set planned with, when the request asked for the set alone
    /// ([`crate::engine::PlanRequest::set_only`]): `tenants` is empty, and the findings of
    /// every migration's `up` script are the answer.
    pub whole_set: Option<Arc<MigrationSet>>,
}

/// One tenant's history, read now.
#[derive(Debug, Clone)]
pub struct TenantHistory {
    /// The tenant.
    pub tenant: String,
    /// Highest applied version.
    pub current_version: Option<crate::model::Version>,
    /// Every record, by version.
    pub records: Vec<crate::model::HistoryRecord>,
    /// Applied migrations (keys) whose file's checksum is another now.
    pub drifted: Vec<crate::model::MigrationKey>,
    /// Applied versions whose `down` script is another now, or gone, than when recorded.
    pub down_drifted: Vec<crate::model::MigrationKey>,
    /// Recorded migrations (keys) with no file in the set.
    pub missing: Vec<crate::model::MigrationKey>,
    /// The set's migrations (keys) not yet applied, ascending.
    pub pending: Vec<crate::model::MigrationKey>,
}

/// One wave a rollout would run.
#[derive(Debug, Clone)]
pub struct WaveInfo {
    /// From 0.
    pub index: u32,
    /// True for the canary wave.
    pub canary: bool,
    /// Tenants in the wave.
    pub tenant_count: u32,
    /// Its first and last tenants, in selection order.
    pub first_tenant: String,
    /// See `first_tenant`.
    pub last_tenant: String,
}

/// One tenant's plan.
#[derive(Debug, Clone)]
pub struct TenantPlan {
    /// The tenant.
    pub tenant: String,
    /// What would run, with warnings and errors.
    pub plan: Plan,
    /// The wave it would run in.
    pub wave: u32,
}

/// `Verify`'s answer.
#[derive(Debug, Clone)]
pub struct FleetVerification {
    /// The fleet.
    pub fleet: String,
    /// One verification per tenant of the page, in selection order.
    pub tenants: Vec<TenantVerification>,
    /// Tenants selected in all pages.
    pub tenant_count: u32,
    /// The next page's token; `None` on the last page.
    pub next_page: Option<String>,
}

/// One tenant's history compared with the set.
#[derive(Debug, Clone)]
pub struct TenantVerification {
    /// The tenant.
    pub tenant: String,
    /// Highest applied version.
    pub current_version: Option<crate::model::Version>,
    /// Versions of the set not applied.
    pub pending: u32,
    /// Drift, missing versions, failed and running records, or `unreachable`.
    pub diagnostics: Vec<Diagnostic>,
    /// With `schema`: the tenant's census class (itself alone), its diff against the
    /// expected model; `None` without `schema` or when its schema could not be read.
    pub schema: Option<super::DriftClass>,
}

/// `Status`'s answer: a fleet summary and each tenant's line.
#[derive(Debug, Clone, Default)]
pub struct FleetStatus {
    /// The fleet.
    pub fleet: String,
    /// The set's highest version.
    pub latest_version: Option<crate::model::Version>,
    /// Tenants selected.
    pub tenant_count: u32,
    /// Tenants per current version (`None`: nothing applied), ascending.
    pub versions: Vec<(Option<crate::model::Version>, u32)>,
    /// Tenants with nothing pending and no failed or running record.
    pub up_to_date: u32,
    /// Tenants with pending versions and no failed or running record.
    pub pending: u32,
    /// Tenants with a failed or running record.
    pub failed: u32,
    /// Tenants that could not be read.
    pub unreachable: u32,
    /// Tenants never read.
    pub unknown: u32,
    /// The oldest reading among the selected tenants, Unix ms.
    pub oldest_read_at_unix_ms: Option<i64>,
    /// Tenants whose last census put them in a drift class (`avocet census`; docs/census.md).
    pub drifted: u32,
    /// One line per tenant of the page, in selection order.
    pub tenants: Vec<TenantStatus>,
    /// The next page's token; `None` on the last page.
    pub next_page: Option<String>,
}

/// One tenant's line of `Status`.
#[derive(Debug, Clone, Default)]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: String,
    /// Highest applied version.
    pub current_version: Option<crate::model::Version>,
    /// Versions of the set not applied.
    pub pending: u32,
    /// Migrations (keys) whose record is `failed` or `running`.
    pub failed_versions: Vec<crate::model::MigrationKey>,
    /// Why the tenant could not be read.
    pub error: Option<String>,
    /// When this was read, Unix ms; `None`: never.
    pub read_at_unix_ms: Option<i64>,
}

/// `Rollouts.List`'s answer.
#[derive(Debug, Clone)]
pub struct RolloutPage {
    /// Newest first.
    pub rollouts: Vec<crate::model::RolloutRecord>,
    /// The next page's token; `None` on the last page.
    pub next_page: Option<String>,
}
