//! Repair: an operator says what state one version of a tenant is in. After a `failed` or
//! `running` record, the migration was finished or undone by hand; after a failed rollback
//! left an `applied` record, it was undone by hand; after an intended edit, the file's new
//! checksum is accepted; after a file was removed on purpose, its record is forgotten. The
//! record is rewritten under the tenant lock, on the same session and history path as every
//! step, and the change is appended to the tenant's history log. A record already as the
//! action asks is left alone ([`Repaired::changed`] false), so repeating a repair is a
//! no-op, as Flyway's `repair` is.

use std::borrow::Cow;

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
    /// Marking applied: the version has no `failed`, `running` or `applied` record on the
    /// tenant (it never ran there, or was rolled back: apply it instead).
    #[error(
        "version {version} has no failed or running record to mark applied (it never ran \
         here, or was rolled back: apply it)"
    )]
    NothingToRepair {
        /// The version asked for.
        version: crate::model::MigrationKey,
    },
    /// Marking: the version is not in the fleet's migration set (`Forget` is for that).
    #[error(
        "version {version} is not in the migration set (a record whose file was removed on \
         purpose is forgotten: --forget)"
    )]
    NotInSet {
        /// The version asked for.
        version: crate::model::MigrationKey,
    },
    /// Accepting a checksum: the version has no applied record.
    #[error("version {version} has no applied record whose checksum could be accepted")]
    NoDrift {
        /// The version asked for.
        version: crate::model::MigrationKey,
    },
    /// Forgetting: the version's file is still in the set.
    #[error(
        "version {version} cannot be forgotten: its file is still in the set (forget is for a \
         recorded version whose file is gone)"
    )]
    NotGone {
        /// The version asked for.
        version: crate::model::MigrationKey,
    },
}

/// What a repair found and did on one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Repaired {
    /// The record's status before; `None` when the tenant had no record of the version.
    pub(crate) previous: Option<RecordStatus>,
    /// False when the record was already as the action asks: nothing was written.
    pub(crate) changed: bool,
}

/// Rewrites the record of `version` on `tenant` as `action` says:
/// - `MarkApplied`: a `failed` or `running` record becomes `applied`;
/// - `MarkRolledBack`: a `failed`, `running` or `applied` record becomes `rolled_back` (an
///   applied one after a failed rollback that the operator finished by hand);
/// - `AcceptChecksum`: an `applied` record whose file changed takes its file's checksums;
/// - `Forget`: a record whose version has no file in the set becomes `rolled_back`, keeping
///   its name and checksum.
///
/// A record already as asked (applied; rolled back or absent; checksums matching; forgotten
/// or absent) is left alone and reported unchanged.
///
/// # Errors
/// [`RepairError::Db`] when the lock does not come within the fleet's `lock_timeout` or
/// the tenant cannot be read or written; [`RepairError::NothingToRepair`],
/// [`RepairError::NotInSet`], [`RepairError::NoDrift`] and [`RepairError::NotGone`] when
/// the record is not in a state the action applies to. Nothing is written then.
pub(crate) async fn repair(
    tenant: &Tenant,
    lock_timeout: std::time::Duration,
    applied_by: &str,
    set: &MigrationSet,
    version: crate::model::MigrationKey,
    action: RepairAction,
) -> Result<Repaired, RepairError> {
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
            let record = history.iter().find(|r| r.version == version);
            let previous = record.map(|r| r.status);
            let unchanged = Ok(Repaired {
                previous,
                changed: false,
            });
            let by = applied_by;
            let (record, migration, status) = match (action, record) {
                (RepairAction::MarkApplied, Some(r)) if r.status == RecordStatus::Applied => {
                    return unchanged;
                }
                (RepairAction::MarkApplied, Some(r)) if r.status.needs_attention() => {
                    let migration =
                        set.get(version.clone())
                            .ok_or_else(|| RepairError::NotInSet {
                                version: version.clone(),
                            })?;
                    (r, Cow::Borrowed(&**migration), RecordStatus::Applied)
                }
                (RepairAction::MarkApplied, _) => {
                    return Err(RepairError::NothingToRepair {
                        version: version.clone(),
                    });
                }
                (RepairAction::MarkRolledBack, None) => return unchanged,
                (RepairAction::MarkRolledBack, Some(r)) if r.status == RecordStatus::RolledBack => {
                    return unchanged;
                }
                (RepairAction::MarkRolledBack, Some(r)) => {
                    let migration =
                        set.get(version.clone())
                            .ok_or_else(|| RepairError::NotInSet {
                                version: version.clone(),
                            })?;
                    (r, Cow::Borrowed(&**migration), RecordStatus::RolledBack)
                }
                (RepairAction::AcceptChecksum, record) => {
                    let migration =
                        set.get(version.clone())
                            .ok_or_else(|| RepairError::NotInSet {
                                version: version.clone(),
                            })?;
                    let r = record
                        .filter(|r| r.status == RecordStatus::Applied)
                        .ok_or_else(|| RepairError::NoDrift {
                            version: version.clone(),
                        })?;
                    if !r.up_drifted(migration) && !r.down_drifted(migration) {
                        return unchanged;
                    }
                    (r, Cow::Borrowed(&**migration), RecordStatus::Applied)
                }
                (RepairAction::Forget, _) if set.get(version.clone()).is_some() => {
                    return Err(RepairError::NotGone {
                        version: version.clone(),
                    });
                }
                (RepairAction::Forget, None) => return unchanged,
                (RepairAction::Forget, Some(r)) if r.status == RecordStatus::RolledBack => {
                    return unchanged;
                }
                (RepairAction::Forget, Some(r)) => {
                    // The record's own name and checksum: there is no file to take them from.
                    let gone = Migration {
                        version: version.clone(),
                        unordered: false,
                        name: r.name.clone(),
                        up: Script {
                            checksum: r.checksum.clone(),
                            ..Script::default()
                        },
                        down: r.down_checksum.clone().map(|checksum| Script {
                            checksum,
                            ..Script::default()
                        }),
                    };
                    (r, Cow::Owned(gone), RecordStatus::RolledBack)
                }
            };
            record_repair(session, record, &migration, status, by).await?;
            Ok(Repaired {
                previous,
                changed: true,
            })
        },
    )
    .await?
}

/// Rewrites `record` of `migration` as `status` (`Applied` or `RolledBack`) after an
/// operator checked the schema, keeping its batch, progress and error, and appends the
/// change to the log. The caller holds the tenant lock.
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
