//! Backups of one tenant taken with its database's own tool: when a fleet takes them
//! ([`BackupWhen`]), what a failed one does ([`BackupOnFailure`]), and a backup as the
//! control store records it ([`BackupRecord`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Direction, Step};

/// When a fleet backs a tenant up during a rollout (`[fleets.NAME.backup] when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupWhen {
    /// Never (the default): only `avocet backup` takes one.
    #[default]
    Never,
    /// Before the first step, on that tenant, whose script the lint marks destructive (an
    /// `up`, or a `down` that is).
    Destructive,
    /// Before the first step of every tenant that has one to run.
    Always,
}

impl BackupWhen {
    /// True when this policy backs a tenant up right before `step` runs (the first such
    /// step of a tenant's run takes the one backup of that run).
    pub fn covers(self, step: &Step) -> bool {
        match self {
            Self::Never => false,
            Self::Destructive => step.script().destructive,
            Self::Always => true,
        }
    }

    /// `never`, `destructive` or `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Destructive => "destructive",
            Self::Always => "always",
        }
    }
}

/// What a failed backup does to its tenant (`[fleets.NAME.backup] on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupOnFailure {
    /// The tenant fails before its migration runs (the default): nothing else changes.
    #[default]
    Fail,
    /// The failure is recorded and logged, and the migration runs without a backup.
    Continue,
}

/// The state of a recorded backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    /// The file is written and its checksum recorded: it can be restored.
    Taken,
    /// The tool failed or timed out; no file is kept.
    Failed,
}

impl BackupState {
    /// `taken` or `failed`, as the control store spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taken => "taken",
            Self::Failed => "failed",
        }
    }

    /// The state a stored spelling names; `None` for an unknown one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "taken" => Some(Self::Taken),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for BackupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backup of one tenant, as the control store keeps it (table `backups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    /// Its id (a UUID).
    pub id: String,
    /// The fleet.
    pub fleet: String,
    /// The tenant.
    pub tenant: String,
    /// The name an ad-hoc backup was given (`avocet backup --name`); empty otherwise.
    pub name: String,
    /// The rollout whose migration it was taken before; empty for an ad-hoc backup.
    pub rollout_id: String,
    /// The migration it was taken before, and the direction of that step: the link from
    /// the backup to that migration's history row; `None` for an ad-hoc backup.
    pub before: Option<(super::MigrationKey, Direction)>,
    /// The tenant's version in the backup: its newest applied numbered version; `None` when
    /// nothing was applied.
    pub version: Option<super::Version>,
    /// The file, as the daemon wrote it (absolute, or relative to its working directory).
    pub path: String,
    /// The file's size, bytes.
    pub bytes: u64,
    /// The file's SHA-256, lowercase hex.
    pub sha256: String,
    /// When the tool started, Unix epoch ms.
    pub started_at_ms: i64,
    /// When the file was complete (or the tool failed), Unix epoch ms.
    pub finished_at_ms: i64,
    /// The tool: `pg_dump`, `mariadb-dump`, `mysqldump` or `sqlite VACUUM INTO`.
    pub tool: String,
    /// The tool's version as it reports it (`pg_dump (PostgreSQL) 16.4`).
    pub tool_version: String,
    /// Taken or failed.
    pub state: BackupState,
    /// Why it failed.
    pub error: Option<String>,
}

impl BackupRecord {
    /// How long the tool ran, ms.
    pub fn duration_ms(&self) -> u64 {
        (self.finished_at_ms - self.started_at_ms).max(0) as u64
    }
}
