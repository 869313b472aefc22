//! Baseline: a tenant whose schema was made by other means (a restored dump, another tool)
//! gets history records for the versions up to a target, marked applied without running
//! them, so the next apply starts after them. Only a tenant with no history is baselined.

use chrono::Utc;

use super::tenant::under_lock;
use crate::{
    dialect::DbError,
    fleet::{Fleet, PooledSession, Tenant},
    model::{Direction, MigrationSet, RecordStatus, RecordWrite},
};

/// Why a tenant was not baselined. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BaselineError {
    /// The lock did not come, the tenant is unreachable, or its history table failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The tenant has history already; a baseline would rewrite what ran.
    #[error("it has {records} history record(s) already; a baseline is for tenants with none")]
    HasHistory {
        /// Records found.
        records: usize,
    },
}

/// Records every migration of `set` up to `to` as applied on `tenant` (batch 0, rollout
/// `baseline`, by `applied_by`), creating its history tables, and returns how many.
///
/// # Errors
/// [`BaselineError::Db`] when the lock does not come within the fleet's `lock_timeout` or
/// the tenant cannot be read or written; [`BaselineError::HasHistory`] when it has records.
pub(crate) async fn baseline(
    fleet: &Fleet,
    tenant: &Tenant,
    set: &MigrationSet,
    to: i64,
    applied_by: &str,
) -> Result<u32, BaselineError> {
    under_lock(fleet, tenant, async |locked: &mut PooledSession, _| {
        let session = locked.session();
        let history = session.prepare_history().await?;
        if !history.is_empty() {
            return Err(BaselineError::HasHistory {
                records: history.len(),
            });
        }
        let now = Utc::now();
        let mut written = 0;
        for m in set.iter().filter(|m| m.version <= to) {
            let statements = m.up.spans.len() as i64;
            let rec = RecordWrite {
                version: m.version,
                name: m.name.clone(),
                checksum: m.up.checksum.clone(),
                down_checksum: m.down.as_ref().map(|d| d.checksum.clone()),
                status: RecordStatus::Applied,
                batch: 0,
                rollout_id: "baseline".into(),
                applied_by: applied_by.to_owned(),
                started_at: now,
                finished_at: Some(now),
                duration_ms: Some(0),
                error: None,
                statements_done: statements,
                statements_total: statements,
                rolled_back_at: None,
                direction: Direction::Up,
            };
            session.write_record(&rec).await?;
            session.append_log(&rec).await?;
            written += 1;
        }
        Ok(written)
    })
    .await?
}
