//! `[fleets.NAME.backup]`: when a fleet's tenants are backed up during a rollout, where the
//! files go, how many are kept, and how the tools are found (docs/backups.md).

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::model::{BackupOnFailure, BackupWhen};

/// The placeholders a backup directory template may hold.
pub const BACKUP_PLACEHOLDERS: [&str; 4] = ["{fleet}", "{tenant}", "{rollout}", "{version}"];

/// A fleet's backup policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// `never` (the default), `destructive` (right before a tenant's first migration, or
    /// `down`, whose script the lint marks destructive, under the tenant lock) or `always`
    /// (before a tenant's first migration of a rollout).
    #[serde(default)]
    pub when: BackupWhen,
    /// The directory of a tenant's backup files, a template of `{fleet}`, `{tenant}`,
    /// `{rollout}` (`adhoc` for `avocet backup`) and `{version}` (the tenant's version in the
    /// backup, `0` when none); relative paths resolve against the working directory.
    /// Created if missing. Default `backups/{fleet}/{tenant}`.
    #[serde(default = "default_to")]
    pub to: String,
    /// Backups kept per tenant: after a new one is taken, older ones past this count are
    /// deleted (file and record). At least 1. Default 5.
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Backups running at once per database server (per file directory for SQLite). At
    /// least 1. Default 2.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Longest run of one backup's tool, e.g. `"30min"`; past it the tool is killed and the
    /// backup failed. Default 1 hour.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// What a failed backup does: `fail` (the default: the tenant fails before its
    /// migration runs, nothing else changes) or `continue` (recorded and logged, and the
    /// migration runs).
    #[serde(default)]
    pub on_failure: BackupOnFailure,
    /// The directory holding the tools (`pg_dump`, `pg_restore`, `mariadb-dump`/`mysqldump`,
    /// `mariadb`/`mysql`); default: the daemon's `PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_dir: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            when: BackupWhen::default(),
            to: default_to(),
            keep: default_keep(),
            concurrency: default_concurrency(),
            timeout: default_timeout(),
            on_failure: BackupOnFailure::default(),
            tools_dir: None,
        }
    }
}

impl BackupConfig {
    /// Why the policy is unusable, as `(key, message)` under `[fleets.NAME.backup]`.
    ///
    /// # Errors
    /// `keep` or `concurrency` zero, `timeout` zero, `to` empty or with a `{…}` that is not
    /// one of [`BACKUP_PLACEHOLDERS`].
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.keep == 0 {
            return Err(("keep", "must be at least 1".into()));
        }
        if self.concurrency == 0 {
            return Err(("concurrency", "must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(("timeout", "must be greater than zero".into()));
        }
        if self.to.trim().is_empty() {
            return Err(("to", "must name a directory".into()));
        }
        let mut rest = self.to.clone();
        for p in BACKUP_PLACEHOLDERS {
            rest = rest.replace(p, "");
        }
        if rest.contains('{') || rest.contains('}') {
            return Err((
                "to",
                format!(
                    "{:?} holds a placeholder other than {}",
                    self.to,
                    BACKUP_PLACEHOLDERS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

fn default_to() -> String {
    "backups/{fleet}/{tenant}".into()
}

fn default_keep() -> u32 {
    5
}

fn default_concurrency() -> usize {
    2
}

fn default_timeout() -> Duration {
    Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_never_five_kept_two_at_once_and_templates_are_checked() {
        let c = BackupConfig::default();
        assert_eq!(c.when, BackupWhen::Never);
        assert_eq!((c.keep, c.concurrency), (5, 2));
        assert_eq!(c.to, "backups/{fleet}/{tenant}");
        assert!(c.check().is_ok());
        let bad = BackupConfig {
            to: "b/{tenant}/{date}".into(),
            ..c.clone()
        };
        assert_eq!(bad.check().unwrap_err().0, "to");
        let none = BackupConfig { keep: 0, ..c };
        assert_eq!(none.check().unwrap_err().0, "keep");
    }
}
