//! Baseline: a tenant whose schema was made by other means (a restored dump, another tool)
//! gets history records for the versions up to a target, or for the versions another
//! tool's history table says it applied (adoption), marked applied without running them,
//! so the next apply starts after them. Only a tenant with no history is baselined, and the
//! other tool's table is only read. Every record and its log row go in one transaction: a
//! tenant is baselined whole or not at all.

use chrono::Utc;

use super::under_lock;
use crate::{
    dialect::{DbError, Item, Timing},
    fleet::{PooledSession, Tenant},
    model::{BaselineSource, Direction, MigrationSet, RecordStatus, RecordWrite},
    plan::{AdoptRefusal, adoption},
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
    /// The other tool's history cannot be adopted: unfinished, unknown versions, changed files.
    #[error(transparent)]
    Adopt(#[from] AdoptRefusal),
}

/// Records the versions `source` names as applied on `tenant` (batch 0, rollout `baseline`
/// or `adopt`, by `applied_by`, which for an adoption also names the tool), creating its
/// history tables, and returns how many.
///
/// # Errors
/// [`BaselineError::Db`] when the lock does not come within `lock_timeout` or the tenant
/// cannot be read or written (the transaction rolled back: no record is kept, though the
/// empty history tables may be); [`BaselineError::HasHistory`] when it has records;
/// [`BaselineError::Adopt`] when the other tool's history is missing, unfinished, names a
/// version the set lacks or a checksum its file does not have. Nothing is written then.
pub(crate) async fn baseline(
    tenant: &Tenant,
    lock_timeout: std::time::Duration,
    set: &MigrationSet,
    source: BaselineSource,
    applied_by: &str,
) -> Result<u32, BaselineError> {
    under_lock(
        tenant,
        lock_timeout,
        async |locked: &mut PooledSession, _| {
            let session = locked.session();
            if let Some(history) = session.read_history().await?.records()
                && !history.is_empty()
            {
                return Err(BaselineError::HasHistory {
                    records: history.len(),
                });
            }
            let (versions, rollout_id, applied_by) = match source {
                BaselineSource::UpTo(to) => {
                    let versions: Vec<crate::model::MigrationKey> = set
                        .iter()
                        .map(|m| m.version.clone())
                        .filter(|v| !set.compare(v, &to).is_gt())
                        .collect();
                    (versions, "baseline", applied_by.to_owned())
                }
                BaselineSource::Adopt(tool) => {
                    let rows = session
                        .read_foreign(tool)
                        .await?
                        .ok_or(AdoptRefusal::NoTable { tool })?;
                    let versions = adoption(set, tool, &rows)?;
                    (
                        versions,
                        "adopt",
                        format!("{tool} (adopted by {applied_by})"),
                    )
                }
            };
            session.prepare_history().await?;
            let now = Utc::now();
            let who = (rollout_id, applied_by.as_str());
            let records: Vec<RecordWrite> = versions
                .iter()
                .filter_map(|v| set.get(v.clone()))
                .map(|m| {
                    let total = m.up.statement_count() as i64;
                    RecordWrite::new(m, RecordStatus::Applied, Direction::Up, 0, who, now)
                        .with_progress(total, None)
                })
                .collect();
            let mut items = vec![Item::Sql("BEGIN")];
            items.extend(records.iter().map(|r| Item::Record(r, Timing::Known)));
            items.push(Item::Sql("COMMIT"));
            if let Err(e) = session.run(&items).await {
                let _ = session.run(&[Item::Sql("ROLLBACK")]).await;
                return Err(DbError::query("writing the history table")(e.source).into());
            }
            let written = records.len() as u32;
            Ok(written)
        },
    )
    .await?
}
