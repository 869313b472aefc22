//! Repair: an operator says what state one version of a tenant is in. After a `failed` or
//! `running` record, the migration was finished or undone by hand; after an intended edit,
//! the file's new checksum is accepted; after a file was removed on purpose, its record is
//! forgotten. The record is rewritten under the tenant lock, on the same session and
//! history path as every step, and the change is appended to the tenant's history log.

use chrono::Utc;

use super::under_lock;
use crate::{
    dialect::{DbError, History, Item, Session, Timing},
    fleet::{PooledSession, Tenant},
    model::{
        Direction, HistoryRecord, Migration, MigrationSet, RecordStatus, RecordWrite, RepairAction,
        Script,
    },
};

/// Why a repair did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// The lock did not come, the tenant is unreachable, or its history table failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The version has no `failed` or `running` record on the tenant.
    #[error("version {version} has no failed or running record")]
    NothingToRepair {
        /// The version asked for.
        version: crate::model::Version,
    },
    /// The version is not in the fleet's migration set.
    #[error("version {version} is not in the migration set")]
    NotInSet {
        /// The version asked for.
        version: crate::model::Version,
    },
    /// Accepting a checksum: the version has no applied record, or its record matches the
    /// file already.
    #[error(
        "version {version} has no applied record whose up or down checksum differs from its file"
    )]
    NoDrift {
        /// The version asked for.
        version: crate::model::Version,
    },
    /// Forgetting: the version has no record, or its file is still in the set.
    #[error(
        "version {version} cannot be forgotten: forget is for a recorded version whose file \
         is gone from the set"
    )]
    NotGone {
        /// The version asked for.
        version: crate::model::Version,
    },
}

/// Rewrites the record of `version` on `tenant` as `action` says and returns the status it
/// had:
/// - `MarkApplied` / `MarkRolledBack`: a `failed` or `running` record becomes `applied` or
///   `rolled_back`;
/// - `AcceptChecksum`: an `applied` record takes its file's checksum;
/// - `Forget`: a record whose version has no file in the set becomes `rolled_back`, keeping
///   its name and checksum.
///
/// # Errors
/// [`RepairError::Db`] when the lock does not come within the fleet's `lock_timeout` or
/// the tenant cannot be read or written; [`RepairError::NothingToRepair`],
/// [`RepairError::NotInSet`], [`RepairError::NoDrift`] and [`RepairError::NotGone`] when
/// the record is not in the state the action needs. Nothing is written then.
pub(crate) async fn repair(
    tenant: &Tenant,
    lock_timeout: std::time::Duration,
    applied_by: &str,
    set: &MigrationSet,
    version: crate::model::Version,
    action: RepairAction,
) -> Result<RecordStatus, RepairError> {
    under_lock(
        tenant,
        lock_timeout,
        async |locked: &mut PooledSession, _| {
            let session = locked.session();
            // Nothing is created on a tenant without history; an older table is upgraded.
            let history = match session.read_history().await? {
                History::Missing => Vec::new(),
                History::Current(history) => history,
                History::Older(_) => session.prepare_history().await?,
            };
            let record = |pick: &dyn Fn(RecordStatus) -> bool| {
                history
                    .iter()
                    .find(|r| r.version == version && pick(r.status))
            };
            let by = applied_by;
            match action {
                RepairAction::MarkApplied | RepairAction::MarkRolledBack => {
                    let record = record(&|s| s.needs_attention())
                        .ok_or(RepairError::NothingToRepair { version })?;
                    let migration = set.get(version).ok_or(RepairError::NotInSet { version })?;
                    let status = match action {
                        RepairAction::MarkApplied => RecordStatus::Applied,
                        _ => RecordStatus::RolledBack,
                    };
                    record_repair(session, record, migration, status, by).await?;
                    Ok(record.status)
                }
                RepairAction::AcceptChecksum => {
                    let migration = set.get(version).ok_or(RepairError::NotInSet { version })?;
                    let record = record(&|s| s == RecordStatus::Applied)
                        .filter(|r| r.up_drifted(migration) || r.down_drifted(migration))
                        .ok_or(RepairError::NoDrift { version })?;
                    record_repair(session, record, migration, RecordStatus::Applied, by).await?;
                    Ok(record.status)
                }
                RepairAction::Forget => {
                    let record = record(&|s| s != RecordStatus::RolledBack)
                        .filter(|_| set.get(version).is_none())
                        .ok_or(RepairError::NotGone { version })?;
                    // The record's own name and checksum: there is no file to take them from.
                    let gone = Migration {
                        version,
                        unordered: false,
                        name: record.name.clone(),
                        up: Script {
                            checksum: record.checksum.clone(),
                            ..Script::default()
                        },
                        down: record.down_checksum.clone().map(|checksum| Script {
                            checksum,
                            ..Script::default()
                        }),
                    };
                    record_repair(session, record, &gone, RecordStatus::RolledBack, by).await?;
                    Ok(record.status)
                }
            }
        },
    )
    .await?
}

/// Rewrites the `failed` or `running` record of `migration` as `status` (`Applied` or
/// `RolledBack`) after an operator checked the schema, keeping its batch, progress and
/// error, and appends the change to the log. The caller holds the tenant lock.
///
/// # Errors
/// [`DbError::Query`] when the history table cannot be written.
async fn record_repair(
    session: &mut dyn Session,
    record: &HistoryRecord,
    migration: &Migration,
    status: RecordStatus,
    applied_by: &str,
) -> Result<(), DbError> {
    let direction = match status {
        RecordStatus::RolledBack => Direction::Down,
        _ => Direction::Up,
    };
    let who = ("repair", applied_by);
    let mut rec = RecordWrite::new(migration, status, direction, record.batch, who, Utc::now())
        .with_progress(record.statements_done, record.error.clone());
    rec.statements_total = record.statements_total;
    session
        .run(&[Item::Record(&rec, Timing::Known)])
        .await
        .map_err(|e| DbError::query("writing the history table")(e.source))
}
