//! A tenant's last-known state, and the one rule that classifies it against a set.
//!
//! What is stored of a tenant is what its history table said (the versions applied, the
//! repeatables' checksums, the records that need attention), never a verdict: a verdict
//! taken against the set of the day it was read goes stale as soon as a migration is
//! added. [`KnownState::classify`] (or [`classify`] for a tenant never read) judges it
//! against the set of now, every time it is shown: by `Status`, `ListTenants` and the
//! fleet gauges alike, so they never contradict each other.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet},
};

use super::{MigrationKey, MigrationSet, Version};

/// What a tenant's history table held when it was last read (or changed by a rollout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Numbered versions (baseline migrations' included) recorded `applied`.
    pub versions: BTreeSet<Version>,
    /// Repeatables recorded `applied` (every key a [`MigrationKey::Repeatable`]), each with
    /// the checksum of the `up` script that ran: one whose file changed since is pending
    /// again.
    pub repeatables: BTreeMap<MigrationKey, String>,
}

impl Applied {
    /// From the applied keys of a run's progress, whose repeatables ran the set's file as
    /// it is: their checksums are the set's.
    pub fn from_versions(set: &MigrationSet, applied: &BTreeSet<MigrationKey>) -> Self {
        let mut out = Self::default();
        for key in applied {
            match key {
                MigrationKey::Versioned(v) => {
                    out.versions.insert(*v);
                }
                MigrationKey::Repeatable(_) => {
                    if let Some(m) = set.get(key.clone()) {
                        out.repeatables.insert(key.clone(), m.up.checksum.clone());
                    }
                }
            }
        }
        out
    }
}

/// What a tenant's history table said when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownState {
    /// The fleet.
    pub fleet: String,
    /// The tenant.
    pub tenant: String,
    /// What was applied; `None` for a state stored by a daemon older than the control
    /// store's schema 6, of which only the highest applied version is known.
    pub applied: Option<Applied>,
    /// Highest applied version in the set of the day it was read (what an older daemon
    /// reads; [`KnownState::classify`] says what it is in the set of now).
    pub current_version: Option<Version>,
    /// Migrations recorded `failed` or `running` (a repeatable may be one).
    pub failed_versions: Vec<MigrationKey>,
    /// One of those records stops an apply until `avocet repair`: a `running` record, or
    /// a `failed` one that an apply does not retry.
    pub blocked: bool,
    /// Why the tenant could not be read, when it could not.
    pub error: Option<String>,
    /// When, Unix ms.
    pub read_at: i64,
}

/// The class a tenant falls in, against the current set. Every tenant is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TenantClass {
    /// Read, nothing pending, nothing failed.
    UpToDate,
    /// Read, nothing failed, migrations of the set not applied.
    Pending,
    /// A `failed` record that an apply retries.
    Failed,
    /// A record that stops an apply until `avocet repair` (see [`KnownState::blocked`]).
    Blocked,
    /// Never read: the whole set is pending as far as anyone knows.
    NeverRead,
    /// Its last reading was an error.
    Unreachable,
}

impl TenantClass {
    /// The spelling shown: `up to date`, `pending`, `failed`, `blocked`, `never read`,
    /// `unreachable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpToDate => "up to date",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::NeverRead => "never read",
            Self::Unreachable => "unreachable",
        }
    }
}

/// A tenant's last-known state judged against the current set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Its class.
    pub class: TenantClass,
    /// Highest applied numbered version in the current set's order; `None` when nothing
    /// was applied, never read or unreachable.
    pub current_version: Option<Version>,
    /// Migrations of the current set an apply would run (a baseline migration counts
    /// one): the whole set for a tenant never read, 0 for an unreachable one.
    pub pending: u32,
}

/// Classifies `known` against `set`: the one rule (see the module's doc). `None` is a
/// tenant never read.
pub fn classify(known: Option<&KnownState>, set: &MigrationSet) -> Classification {
    match known {
        Some(k) => k.classify(set),
        None => Classification {
            class: TenantClass::NeverRead,
            current_version: None,
            pending: pending(set, &Applied::default()),
        },
    }
}

impl KnownState {
    /// This state against `set`: unreachable, blocked, failed, pending or up to date, in
    /// that precedence, with the pending count an apply would run.
    pub fn classify(&self, set: &MigrationSet) -> Classification {
        if self.error.is_some() {
            return Classification {
                class: TenantClass::Unreachable,
                current_version: None,
                pending: 0,
            };
        }
        let legacy;
        let applied = match &self.applied {
            Some(applied) => applied,
            None => {
                legacy = legacy_applied(set, self.current_version, &self.failed_versions);
                &legacy
            }
        };
        let pending = pending(set, applied);
        let class = if self.blocked {
            TenantClass::Blocked
        } else if !self.failed_versions.is_empty() {
            TenantClass::Failed
        } else if pending > 0 {
            TenantClass::Pending
        } else {
            TenantClass::UpToDate
        };
        Classification {
            class,
            current_version: set.newest(applied.versions.iter().cloned()),
            pending,
        }
    }
}

/// What a state stored before schema 6 (its highest applied version only) is taken to
/// have applied: every numbered version of the set up to it, less the failed ones, and
/// every repeatable as it is now (nothing was known of them).
fn legacy_applied(
    set: &MigrationSet,
    current: Option<Version>,
    failed: &[MigrationKey],
) -> Applied {
    let mut applied = Applied::default();
    let Some(current) = current else {
        return applied;
    };
    for m in set.iter().chain(set.baselines()) {
        match &m.version {
            MigrationKey::Repeatable(_) => {
                applied
                    .repeatables
                    .insert(m.version.clone(), m.up.checksum.clone());
            }
            MigrationKey::Versioned(v) => {
                if set.compare(v, &current) != Ordering::Greater && !failed.contains(&m.version) {
                    applied.versions.insert(*v);
                }
            }
        }
    }
    if !failed.contains(&current.into()) {
        applied.versions.insert(current);
    }
    applied
}

/// How many of `set`'s migrations an apply would run on a tenant that applied `applied`,
/// as `plan::pending` counts them: a numbered version not applied (an out-of-order one
/// too), a repeatable not applied or whose file changed; on a tenant that applied no
/// numbered version, the newest baseline migration stands for the versions it covers, and
/// versions at or below an applied baseline migration are covered.
fn pending(set: &MigrationSet, applied: &Applied) -> u32 {
    let start = match applied.versions.is_empty() {
        true => set.baselines().next_back().map(|b| &b.version),
        false => None,
    };
    let floor = start.and_then(MigrationKey::version).or_else(|| {
        set.newest(
            applied
                .versions
                .iter()
                .filter(|v| set.baseline(v).is_some())
                .copied(),
        )
    });
    let covered = |v: &Version| floor.is_some_and(|f| set.compare(v, &f) != Ordering::Greater);
    let rest = set
        .iter()
        .filter(|m| match &m.version {
            MigrationKey::Repeatable(_) => {
                applied.repeatables.get(&m.version) != Some(&m.up.checksum)
            }
            MigrationKey::Versioned(v) => !covered(v) && !applied.versions.contains(v),
        })
        .count();
    (rest + usize::from(start.is_some())) as u32
}

/// Tenants counted per class and per current version: what `Status` and the gauges
/// report of a fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Tenants per class.
    pub classes: BTreeMap<TenantClass, u32>,
    /// Read tenants (not unreachable) per current version (`None`: nothing applied).
    pub versions: BTreeMap<Option<Version>, u32>,
    /// The oldest reading, Unix ms.
    pub oldest_read_at: Option<i64>,
}

impl Tally {
    /// Counts `count` tenants of classification `c`, read at `read_at` (`None`: never).
    pub fn add(&mut self, c: &Classification, count: u32, read_at: Option<i64>) {
        *self.classes.entry(c.class).or_default() += count;
        if !matches!(c.class, TenantClass::NeverRead | TenantClass::Unreachable) {
            *self.versions.entry(c.current_version).or_default() += count;
        }
        if let Some(at) = read_at {
            self.oldest_read_at = Some(self.oldest_read_at.map_or(at, |o| o.min(at)));
        }
    }

    /// Tenants of `class`.
    pub fn count(&self, class: TenantClass) -> u32 {
        self.classes.get(&class).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "known_tests.rs"]
pub(crate) mod tests;
