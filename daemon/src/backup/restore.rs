//! Restoring one backup into its tenant, under the tenant lock: the file's SHA-256 checked
//! against its record, then PostgreSQL `pg_restore --clean --if-exists` (one transaction),
//! MySQL/MariaDB the dump through `mariadb`/`mysql`, SQLite the backup file's schema and
//! rows copied over the tenant's in one transaction (`ATTACH`); then the restored history
//! table's newest applied version is checked against the backup's, and a `restored` entry
//! (`status` `restored`, `rollout_id` `restore:<backup id>`) appended to the tenant's history
//! log.

use std::{path::Path, str::FromStr, time::Duration};

use chrono::Utc;

use super::{
    BackupError, Backups,
    dump::{self, connection},
    tools::{self, Job},
};
use crate::{
    dialect::{DbError, History, Item},
    fleet::{Fleet, PooledSession, Tenant},
    migrate::under_lock,
    model::{
        BackupRecord, DialectKind, Direction, HistoryRecord, Migration, MigrationSet, RecordStatus,
        RecordWrite, Script, Version,
    },
};

/// Why a restore did not happen or did not check out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The file is gone or changed since it was taken; nothing was restored.
    #[error("backup {id}: its file {path} {why}; nothing was restored")]
    FileChanged {
        /// The backup.
        id: String,
        /// Its file.
        path: String,
        /// `is missing`, or its checksum now.
        why: String,
    },
    /// The restore ran, and the restored history's newest version is not the backup's.
    #[error(
        "backup {id} was restored, but the tenant's history now says version {found} where \
         the backup recorded {expected}"
    )]
    VersionMismatch {
        /// The backup.
        id: String,
        /// Its recorded version (`none` when empty).
        expected: String,
        /// What the history says now (`none` when nothing is applied).
        found: String,
    },
    /// The tool, the lock, the tenant or the store failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// A restore that checked out.
#[derive(Debug, Clone)]
pub(crate) struct Restored {
    /// The tenant's newest applied version now (the backup's); `None` when none.
    pub(crate) version: Option<Version>,
    /// How long the tool ran, ms.
    pub(crate) duration_ms: u64,
}

impl Backups {
    /// Restores `record` into `tenant` of `fleet` under its lock (within the fleet's
    /// `lock_timeout`), checks that the history's newest applied version (in `set`'s order)
    /// is the backup's, and logs the restore in the tenant's history log, naming
    /// `applied_by`.
    ///
    /// # Errors
    /// [`RestoreError::FileChanged`] before anything runs when the file is missing or its
    /// SHA-256 differs from the record; [`RestoreError::Backup`] for the lock, the tool
    /// (its own words) or a timeout; [`RestoreError::VersionMismatch`] after a restore
    /// whose history does not say the backup's version.
    pub(crate) async fn restore(
        &self,
        fleet: &Fleet,
        tenant: &Tenant,
        set: &MigrationSet,
        record: &BackupRecord,
        applied_by: &str,
    ) -> Result<Restored, RestoreError> {
        let path = Path::new(&record.path);
        let changed = |why: String| RestoreError::FileChanged {
            id: record.id.clone(),
            path: record.path.clone(),
            why,
        };
        if !path.exists() {
            return Err(changed("is missing".into()));
        }
        let (_, sha256) = dump::hash(path).await?;
        if sha256 != record.sha256 {
            return Err(changed(format!(
                "has SHA-256 {sha256}, not the recorded {}",
                record.sha256
            )));
        }
        let target = tenant.dump_target().ok_or(BackupError::Dsn)?;
        let work = async |locked: &mut PooledSession, _| -> Result<Restored, RestoreError> {
            let clock = std::time::Instant::now();
            read_back(fleet, target, path).await?;
            let duration_ms = clock.elapsed().as_millis() as u64;
            let session = locked.session();
            let history = match session.read_history().await.map_err(BackupError::Db)? {
                History::Missing => Vec::new(),
                History::Current(h) | History::Older(h) => h,
            };
            let found = newest_applied(set, &history);
            if found != record.version {
                let none = |v: Option<Version>| v.map_or_else(|| "none".into(), |v| v.to_string());
                return Err(RestoreError::VersionMismatch {
                    id: record.id.clone(),
                    expected: none(record.version),
                    found: none(found),
                });
            }
            if let Some(r) = found.and_then(|v| history.iter().find(|r| r.version == v)) {
                log_restored(locked, r, &record.id, applied_by)
                    .await
                    .map_err(BackupError::Db)?;
            }
            Ok(Restored {
                version: found,
                duration_ms,
            })
        };
        under_lock(tenant, fleet.lock_timeout, work)
            .await
            .map_err(BackupError::Db)?
    }
}

/// The newest applied numbered version of `history` in `set`'s order; `None` when none.
/// What a backup records as its version, and what a restore checks.
pub(crate) fn newest_applied(set: &MigrationSet, history: &[HistoryRecord]) -> Option<Version> {
    set.newest(
        history
            .iter()
            .filter(|r| r.status == RecordStatus::Applied)
            .filter_map(|r| r.version.version()),
    )
}

/// Appends the restore to the history log: a `restored` entry of the backup's version,
/// written by `restore:<backup id>`. The history row itself is the backup's.
async fn log_restored(
    locked: &mut PooledSession,
    record: &HistoryRecord,
    backup: &str,
    applied_by: &str,
) -> Result<(), DbError> {
    let migration = Migration {
        version: record.version.clone(),
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
    let who = format!("restore:{backup}");
    let mut rec = RecordWrite::new(
        &migration,
        RecordStatus::Applied,
        Direction::Up,
        record.batch,
        (&who, applied_by),
        Utc::now(),
    );
    rec.log_status = Some("restored");
    locked
        .session()
        .run(&[Item::Log(&rec)])
        .await
        .map_err(|e| DbError::query("writing the history log")(e.source))
}

/// Runs the dialect's restore of `file` into `target`.
async fn read_back(
    fleet: &Fleet,
    target: &crate::dialect::Target,
    file: &Path,
) -> Result<(), BackupError> {
    let policy = &fleet.backup;
    if fleet.dialect == DialectKind::Sqlite {
        return sqlite_restore(target, file, policy.timeout).await;
    }
    let tool = tools::find(fleet.dialect, Job::Restore, policy)?.ok_or(BackupError::Dsn)?;
    let conn = connection(fleet.dialect, target)?;
    match fleet.dialect {
        DialectKind::Postgres => {
            let database = conn
                .env
                .iter()
                .find(|(k, _)| *k == "PGDATABASE")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let args = vec![
                "--clean".into(),
                "--if-exists".into(),
                "--no-owner".into(),
                "--single-transaction".into(),
                "--exit-on-error".into(),
                format!("--dbname={database}"),
                file.display().to_string(),
            ];
            dump::run(&tool, &args, &conn.env, None, policy.timeout).await
        }
        _ => dump::run(&tool, &conn.args, &conn.env, Some(file), policy.timeout).await,
    }
}

/// SQLite: the backup file attached, and in one transaction every table and view of the
/// tenant dropped, then the backup's schema made again and its rows copied (AUTOINCREMENT
/// counters included), foreign keys checked at the commit. The tenant's file stays the
/// same file, so every open connection sees the restored content.
async fn sqlite_restore(
    target: &crate::dialect::Target,
    file: &Path,
    timeout: Duration,
) -> Result<(), BackupError> {
    use sqlx::{Connection, Executor, Row};
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let work = async {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&target.dsn)?;
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        sqlx::query("ATTACH DATABASE $1 AS avocet_restore")
            .bind(file.display().to_string())
            .execute(&mut conn)
            .await?;
        let mut tx = conn.begin().await?;
        tx.execute("PRAGMA defer_foreign_keys = ON").await?;
        let old = sqlx::query(
            "SELECT type, name FROM main.sqlite_master WHERE type IN ('view', 'table') \
             AND name NOT LIKE 'sqlite_%' ORDER BY type DESC",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in old {
            let (kind, name): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            let kind = if kind == "view" { "VIEW" } else { "TABLE" };
            tx.execute(format!("DROP {kind} IF EXISTS main.{}", quote(&name)).as_str())
                .await?;
        }
        let new = sqlx::query(
            "SELECT type, name, sql FROM avocet_restore.sqlite_master WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 \
             WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut tables = Vec::new();
        for row in new {
            let (kind, name, sql): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            tx.execute(sql.as_str()).await?;
            if kind == "table" {
                tables.push(name);
            }
        }
        for name in &tables {
            let q = quote(name);
            tx.execute(format!("INSERT INTO main.{q} SELECT * FROM avocet_restore.{q}").as_str())
                .await?;
        }
        let counters = sqlx::query(
            "SELECT 1 FROM avocet_restore.sqlite_master WHERE name = 'sqlite_sequence'",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if counters.is_some() {
            tx.execute("DELETE FROM main.sqlite_sequence").await?;
            tx.execute(
                "INSERT INTO main.sqlite_sequence SELECT * FROM avocet_restore.sqlite_sequence",
            )
            .await?;
        }
        tx.commit().await?;
        conn.execute("DETACH DATABASE avocet_restore").await?;
        let _ = conn.close().await;
        Ok::<(), sqlx::Error>(())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(BackupError::ToolFailed {
            tool: "SQLite restore",
            message: e.to_string(),
        }),
        Err(_) => Err(BackupError::Timeout {
            tool: "SQLite restore",
            after_ms: timeout.as_millis() as u64,
        }),
    }
}
