//! Taking one backup: the directory from the fleet's template, the file, the record (taken
//! or failed), the metrics, and retention (`keep` per tenant, older ones deleted after a
//! successful new one).

use std::{path::PathBuf, time::Instant};

use super::{BackupError, Backups, dump};
use crate::{
    dialect::History,
    fleet::{Fleet, PooledSession, Tenant},
    migrate::under_lock,
    model::{
        BackupRecord, BackupState, DialectKind, Direction, MigrationKey, MigrationSet, Version,
    },
    store::{BackupFilter, now_ms},
};

/// Why a backup is taken.
#[derive(Debug, Clone)]
pub(crate) struct Occasion<'a> {
    /// The rollout it precedes a migration of; `None` for an ad-hoc backup.
    pub(crate) rollout_id: Option<&'a str>,
    /// The step it precedes: its version and direction.
    pub(crate) before: Option<(MigrationKey, Direction)>,
    /// An ad-hoc backup's name; empty otherwise.
    pub(crate) name: &'a str,
    /// The tenant's newest applied version now (what the backup holds).
    pub(crate) version: Option<Version>,
}

impl Backups {
    /// Backs `tenant` of `fleet` up with its database's tool into the fleet's directory,
    /// records it (a failure too, with why), counts it, and deletes the tenant's backups
    /// past the fleet's `keep`, oldest first. The caller holds the tenant lock, so no
    /// migration of this daemon changes the tenant meanwhile.
    ///
    /// # Errors
    /// [`BackupError`] for a tool missing or failing, a timeout, a directory that cannot be
    /// written, or the store; no file is left then. A failed retention is logged, not
    /// returned: the new backup stands.
    pub(crate) async fn take(
        &self,
        fleet: &Fleet,
        tenant: &Tenant,
        occasion: Occasion<'_>,
    ) -> Result<BackupRecord, BackupError> {
        let policy = &fleet.backup;
        let target = tenant.dump_target().ok_or(BackupError::Dsn)?;
        let version = occasion.version;
        let dir = directory(&policy.to, &fleet.name, &tenant.id, &occasion, version);
        let id = uuid::Uuid::new_v4().to_string();
        let started = chrono::Utc::now();
        let ext = match fleet.dialect {
            DialectKind::Postgres => "dump",
            DialectKind::Mysql => "sql",
            DialectKind::Sqlite => "sqlite",
        };
        let file = dir.join(format!("{}-{id}.{ext}", started.format("%Y%m%dT%H%M%SZ")));
        let host = tenant.host().unwrap_or_else(|| dir.display().to_string());
        let slot = self.slot(format!("{}|{host}", fleet.name), policy.concurrency);
        let _permit = slot.acquire_owned().await.ok();
        let clock = Instant::now();
        let taken = async {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(BackupError::io("making the backup directory", &dir))?;
            dump::dump(fleet.dialect, target, policy, &file).await
        }
        .await;
        let seconds = clock.elapsed().as_secs_f64();
        let mut record = BackupRecord {
            id,
            fleet: fleet.name.clone(),
            tenant: tenant.id.clone(),
            name: occasion.name.to_owned(),
            rollout_id: occasion.rollout_id.unwrap_or_default().to_owned(),
            before: occasion.before.clone(),
            version,
            path: file.display().to_string(),
            bytes: 0,
            sha256: String::new(),
            started_at_ms: started.timestamp_millis(),
            finished_at_ms: now_ms(),
            tool: String::new(),
            tool_version: String::new(),
            state: BackupState::Taken,
            error: None,
        };
        match &taken {
            Ok(d) => {
                record.bytes = d.bytes;
                record.sha256 = d.sha256.clone();
                record.tool = d.tool.clone();
                record.tool_version = d.tool_version.clone();
            }
            Err(e) => {
                record.state = BackupState::Failed;
                record.error = Some(e.to_string());
            }
        }
        self.metrics
            .backup(&fleet.name, record.state.as_str(), record.bytes, seconds);
        self.store.insert_backup(&record).await?;
        if let Err(e) = taken {
            tracing::warn!(fleet = %fleet.name, tenant = %tenant.id, "backup failed: {e}");
            return Err(e);
        }
        tracing::info!(
            fleet = %fleet.name,
            tenant = %tenant.id,
            backup = %record.id,
            bytes = record.bytes,
            seconds,
            "backup taken"
        );
        if let Err(e) = self.keep(fleet, &tenant.id).await {
            tracing::warn!(fleet = %fleet.name, tenant = %tenant.id, "backup retention: {e}");
        }
        Ok(record)
    }

    /// An ad-hoc backup of `tenant` named `name`, under its lock (the fleet's
    /// `lock_timeout`), so no migration runs while the tool reads; its version is the
    /// history's newest applied one, in `set`'s order.
    ///
    /// # Errors
    /// [`BackupError::Db`] when the lock does not come or the history cannot be read; as
    /// [`Backups::take`].
    pub(crate) async fn adhoc(
        &self,
        fleet: &Fleet,
        tenant: &Tenant,
        set: &MigrationSet,
        name: &str,
    ) -> Result<BackupRecord, BackupError> {
        let work = async |locked: &mut PooledSession, _| {
            let history = match locked.session().read_history().await? {
                History::Missing => Vec::new(),
                History::Current(h) | History::Older(h) => h,
            };
            let occasion = Occasion {
                rollout_id: None,
                before: None,
                name,
                version: super::newest_applied(set, &history),
            };
            self.take(fleet, tenant, occasion).await
        };
        under_lock(tenant, fleet.lock_timeout, work).await?
    }

    /// Deletes `tenant`'s taken backups past the fleet's `keep`, oldest first; its failed
    /// records past `keep` too.
    async fn keep(&self, fleet: &Fleet, tenant: &str) -> Result<(), BackupError> {
        let keep = fleet.backup.keep as usize;
        for state in [BackupState::Taken, BackupState::Failed] {
            let filter = BackupFilter {
                fleet: fleet.name.clone(),
                tenant: tenant.to_owned(),
                state: Some(state),
                limit: u32::MAX / 2,
            };
            let listed = self.store.list_backups(&filter).await?;
            for old in listed.iter().skip(keep) {
                self.delete(old).await?;
                tracing::info!(fleet = %fleet.name, tenant, backup = %old.id, "backup deleted (keep = {keep})");
            }
        }
        Ok(())
    }
}

/// The fleet's directory template with this backup's values.
fn directory(
    template: &str,
    fleet: &str,
    tenant: &str,
    occasion: &Occasion<'_>,
    version: Option<Version>,
) -> PathBuf {
    let version = version.map_or_else(|| "0".to_owned(), |v| v.to_string());
    PathBuf::from(
        template
            .replace("{fleet}", fleet)
            .replace("{tenant}", tenant)
            .replace("{rollout}", occasion.rollout_id.unwrap_or("adhoc"))
            .replace("{version}", &version),
    )
}
