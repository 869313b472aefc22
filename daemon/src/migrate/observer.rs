//! What the engine tells its caller while it runs a tenant. A rollout turns these into
//! events and metrics; a test records them.

use std::time::Duration;

use async_trait::async_trait;

use super::StepOutcome;
use crate::{
    fleet::Tenant,
    model::{LockRetry, Step, Version},
};

/// Receives what happens on a tenant as it happens, and says when to stop.
#[async_trait]
pub(crate) trait Observer: Sync {
    /// The tenant lock came after `waited` (`acquired`), or did not come within the lock
    /// timeout.
    fn lock_waited(&self, tenant: &Tenant, waited: Duration, acquired: bool);
    /// `step` is about to run on `tenant`.
    async fn migration_started(&self, tenant: &Tenant, step: &Step);
    /// A statement of a migration on `tenant` gave up waiting for a lock; the migration
    /// runs again after `retry.wait_ms` (DESIGN.md rule 7).
    async fn lock_retry(&self, tenant: &Tenant, retry: &LockRetry);
    /// `step` ended on `tenant` with `outcome` (recorded already).
    async fn migration_finished(&self, tenant: &Tenant, step: &Step, outcome: &StepOutcome);
    /// The fleet's backup policy covers `before`, the first such step of this tenant's
    /// run: back the tenant up now, under its lock, before the step runs; `version` is its
    /// newest applied version now. `Err` (why, naming the cause) fails the tenant
    /// `backup_failed` before the step runs; a policy that lets the migration run without
    /// its backup (`on_failure = "continue"`) answers `Ok`. Nothing to do by default.
    async fn backup(
        &self,
        _tenant: &Tenant,
        _before: &Step,
        _version: Option<Version>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// True once the tenant must stop before its next migration (a cancel, the daemon's
    /// shutdown). A migration that started always finishes or fails on its own.
    fn stop_requested(&self) -> bool;
}
