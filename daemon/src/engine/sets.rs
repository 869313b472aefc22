//! Migration sets published through the API: publishing (validated as a directory load
//! would, stored once under the digest Plan reports), tags, listing and reading back with
//! every file checked; and the published set a fleet or a request names, read from the
//! control store and parsed once per replica.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};

use super::{Caller, Engine, EngineError};
use crate::{
    fleet::{Fleet, FleetError, SetError, SetFile, SetRef, load_published, tag_refusal},
    model::{DialectKind, MigrationKey, MigrationSet, SetFormat},
    rollout::published_set,
    store::{Deletion, NewSet, StoredFile, StoredSet, TagMove},
};

use crate::config::{DEFAULT_MAX_SET_BYTES, DEFAULT_MAX_SET_FILES, DEFAULT_SET_RETENTION};

/// The limits of a published set: its files' total bytes, its number of files, and how
/// long it is kept untagged.
#[derive(Debug, Clone, Copy)]
pub struct SetLimits {
    /// Total bytes of a set's files (`[limits] max_set_bytes`).
    pub max_bytes: u64,
    /// Files of a set (`[limits] max_set_files`).
    pub max_files: usize,
    /// An untagged set published longer ago than this, pinned by no rollout and followed
    /// by no fleet, is deleted (`set_retention`, default 30 days).
    pub retention: Duration,
}

impl Default for SetLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_SET_BYTES,
            max_files: DEFAULT_MAX_SET_FILES,
            retention: DEFAULT_SET_RETENTION,
        }
    }
}

/// `PublishSet`: a set's files, its layout and the dialect to validate it with.
#[derive(Debug, Clone)]
pub(crate) struct PublishRequest {
    /// Its layout; [`SetFormat::Auto`] detects it as a directory load does.
    pub(crate) format: SetFormat,
    /// The dialect its scripts are tokenised and linted with.
    pub(crate) dialect: DialectKind,
    /// A tag to point at it once stored.
    pub(crate) tag: Option<String>,
    /// Its files, each path checked.
    pub(crate) files: Vec<SetFile>,
}

/// What `PublishSet` did.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// The set's digest: Plan's for the same files in a directory.
    pub(crate) digest: String,
    /// False when a set with this digest was stored already (nothing was written but the tag).
    pub(crate) created: bool,
    /// Its migrations.
    pub(crate) migrations: usize,
    /// Its files' total bytes.
    pub(crate) bytes: u64,
    /// Its files.
    pub(crate) files: usize,
    /// Its layout, detected when the request left it to detection.
    pub(crate) format: SetFormat,
}

/// What `DiffSets` found: versions as their text (`3`, `1.2.3`, `R__views`) with names.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetDiff {
    /// The first set's digest.
    pub(crate) from: String,
    /// The second set's digest.
    pub(crate) to: String,
    /// Migrations (key, name) only the second set has.
    pub(crate) added: Vec<(MigrationKey, String)>,
    /// Migrations only the first set has.
    pub(crate) removed: Vec<(MigrationKey, String)>,
    /// Migrations both have, with another name or script.
    pub(crate) changed: Vec<(MigrationKey, String)>,
}

impl Engine {
    /// The limits a published set must keep.
    pub(crate) fn set_limits(&self) -> SetLimits {
        self.set_limits
    }

    /// The same engine with published sets limited by `limits`.
    pub fn limit_sets(mut self, limits: SetLimits) -> Self {
        self.set_limits = limits;
        self
    }

    /// Validates `req`'s files as a directory holding them loads, then stores them under
    /// the set's digest (a no-op for a set stored already) and moves `req.tag` to it, with
    /// audit entries naming `caller`.
    ///
    /// # Errors
    /// [`SetError::BadTag`], [`SetError::TooManyFiles`], [`SetError::TooLarge`],
    /// [`SetError::Path`] naming the file, [`SetError::Invalid`] with the directory load's
    /// error (all as [`EngineError::Set`], nothing stored); [`EngineError::Store`].
    pub(crate) async fn publish_set(
        &self,
        req: PublishRequest,
        caller: &Caller,
    ) -> Result<Published, EngineError> {
        if let Some(tag) = &req.tag {
            check_tag(tag)?;
        }
        let limits = self.set_limits;
        let mut bytes = 0u64;
        for (i, f) in req.files.iter().enumerate() {
            if i >= limits.max_files {
                return Err(SetError::TooManyFiles {
                    path: f.path.clone(),
                    limit: limits.max_files,
                }
                .into());
            }
            bytes += f.bytes.len() as u64;
            if bytes > limits.max_bytes {
                return Err(SetError::TooLarge {
                    path: f.path.clone(),
                    bytes,
                    limit: limits.max_bytes,
                }
                .into());
            }
        }
        let PublishRequest {
            format,
            dialect,
            tag,
            files,
        } = req;
        let (set, files) = tokio::task::spawn_blocking(move || {
            load_published(&files, dialect, format).map(|set| (set, files))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let stored: Vec<StoredFile> = files
            .into_iter()
            .map(|f| StoredFile {
                sha256: hex::encode(Sha256::digest(&f.bytes)),
                path: f.path,
                bytes: f.bytes,
            })
            .collect();
        let new = NewSet {
            digest: set.digest().0.clone(),
            format: set.format().as_str().to_owned(),
            dialect: dialect.as_str().to_owned(),
            migrations: set.len() as i64,
        };
        let created = self
            .runner
            .store()
            .publish_set(&new, &stored, tag.as_deref(), &caller.who)
            .await?;
        tracing::info!(digest = %new.digest, created, caller = %caller.who, tag = ?tag, "set published");
        Ok(Published {
            digest: new.digest,
            created,
            migrations: set.len(),
            bytes,
            files: stored.len(),
            format: set.format(),
        })
    }

    /// Points tag `name` at the stored set `set` (a digest, or another tag's set), with
    /// the move in the tags' history and the audit; the digest and the one it named before.
    ///
    /// # Errors
    /// [`SetError::BadTag`]; [`SetError::NotFound`] when `set` names no stored set;
    /// [`EngineError::Store`].
    pub(crate) async fn tag_set(
        &self,
        name: &str,
        set: &str,
        caller: &Caller,
    ) -> Result<(String, Option<String>), EngineError> {
        check_tag(name)?;
        let digest = self.resolve_set(set).await?;
        match self
            .runner
            .store()
            .tag_set(name, &digest, &caller.who)
            .await?
        {
            TagMove::Moved { from } => Ok((digest, from)),
            TagMove::NoSet => Err(SetError::NotFound(set.to_owned()).into()),
        }
    }

    /// Every stored set, newest first, with its tags.
    ///
    /// # Errors
    /// [`EngineError::Store`].
    pub(crate) async fn list_sets(&self) -> Result<Vec<StoredSet>, EngineError> {
        Ok(self.runner.store().published_sets().await?)
    }

    /// Stored set `set` (a digest or a tag) and its files, each checked against the
    /// SHA-256 recorded when it was published.
    ///
    /// # Errors
    /// [`SetError::NotFound`]; [`SetError::Tampered`] naming the file whose bytes changed;
    /// [`EngineError::Store`].
    pub(crate) async fn get_set(
        &self,
        set: &str,
    ) -> Result<(StoredSet, Vec<StoredFile>), EngineError> {
        let digest = self.resolve_set(set).await?;
        let store = self.runner.store();
        let stored = store
            .published_set(&digest)
            .await?
            .ok_or_else(|| SetError::NotFound(set.to_owned()))?;
        let listed = store.set_files(&digest).await?;
        for f in &listed {
            let sha = hex::encode(Sha256::digest(&f.bytes));
            if sha != f.sha256 {
                return Err(SetError::Tampered {
                    digest,
                    what: format!(
                        "file {:?} has SHA-256 {sha}, {} when published",
                        f.path, f.sha256
                    ),
                }
                .into());
            }
        }
        Ok((stored, listed))
    }

    /// The digest `set` names: a stored set's digest as given, or a tag's set.
    ///
    /// # Errors
    /// [`SetError::NotFound`] when no stored set or tag matches; [`EngineError::Store`].
    pub(crate) async fn resolve_set(&self, set: &str) -> Result<String, EngineError> {
        let store = self.runner.store();
        match SetRef::of_request(set) {
            SetRef::Digest(d) => match store.published_set(&d).await? {
                Some(_) => Ok(d),
                None => Err(SetError::NotFound(set.to_owned()).into()),
            },
            SetRef::Tag(t) => store
                .tagged_set(&t)
                .await?
                .ok_or_else(|| SetError::NotFound(format!("tag {t:?}")).into()),
        }
    }

    /// The set `fleet` serves for a request: the published set `set` names when given,
    /// else for a fleet following a published set the one its tag names now (read from the
    /// store, parsed once, and made the fleet's current set), else its directory's.
    ///
    /// # Errors
    /// [`FleetError::Catalog`] for a directory that does not load; [`FleetError::Published`]
    /// for a published set not found, tampered with or that does not load with the fleet's
    /// dialect; [`EngineError::Store`].
    pub(super) async fn set_for(
        &self,
        fleet: &Fleet,
        set: Option<&str>,
    ) -> Result<Arc<MigrationSet>, EngineError> {
        let published = |source| FleetError::Published {
            fleet: fleet.name.clone(),
            source,
        };
        let (wanted, follow) = match (set, fleet.follows()) {
            (Some(s), _) => (SetRef::of_request(s), false),
            (None, Some(r)) => (r, true),
            (None, None) => return Ok(fleet.load_set()?),
        };
        let digest = match &wanted {
            SetRef::Digest(d) => d.clone(),
            SetRef::Tag(t) => self
                .runner
                .store()
                .tagged_set(t)
                .await?
                .ok_or_else(|| published(SetError::NotFound(wanted.to_string())))?,
        };
        let loaded = published_set(self.runner.store(), fleet, &digest)
            .await?
            .map_err(published)?;
        if follow {
            fleet.follow_digest(&digest);
        }
        Ok(loaded)
    }

    /// Deletes stored set `set` (a digest or a tag) and the tags naming it, with an audit
    /// entry naming `caller`; the digest and the tags removed.
    ///
    /// # Errors
    /// [`SetError::NotFound`]; [`SetError::InUse`] while a fleet of this daemon follows it
    /// (by digest, or by a tag naming it) or an unfinished rollout pinned it;
    /// [`EngineError::Store`].
    pub(crate) async fn delete_set(
        &self,
        set: &str,
        caller: &Caller,
    ) -> Result<(String, Vec<String>), EngineError> {
        let digest = self.resolve_set(set).await?;
        let store = self.runner.store();
        for fleet in self.registry.fleets() {
            let follows = match fleet.follows() {
                Some(SetRef::Digest(d)) => d == digest,
                Some(SetRef::Tag(t)) => store.tagged_set(&t).await?.as_deref() == Some(&digest),
                None => false,
            };
            if follows {
                return Err(SetError::InUse {
                    digest,
                    by: format!("fleet {:?}", fleet.name),
                }
                .into());
            }
        }
        match store.delete_set(&digest, &caller.who).await? {
            Deletion::Deleted { tags } => Ok((digest, tags)),
            Deletion::NoSet => Err(SetError::NotFound(set.to_owned()).into()),
            Deletion::InUse { rollout } => Err(SetError::InUse {
                digest,
                by: format!("rollout {rollout}"),
            }
            .into()),
        }
    }

    /// The versions `to` adds, removes and changes (name or a script's checksum) against
    /// `from`, both stored sets (digests or tags), each parsed with the dialect and format
    /// it was published with; with the two digests.
    ///
    /// # Errors
    /// [`SetError::NotFound`]; [`SetError::Tampered`] for a stored file that no longer
    /// matches its SHA-256; [`SetError::Invalid`] for a set that no longer loads;
    /// [`EngineError::Store`].
    pub(crate) async fn diff_sets(&self, from: &str, to: &str) -> Result<SetDiff, EngineError> {
        let (from_digest, old) = self.parsed(from).await?;
        let (to_digest, new) = self.parsed(to).await?;
        let entry = |m: &crate::model::Migration| (m.version.clone(), m.name.clone());
        let mut diff = SetDiff {
            from: from_digest,
            to: to_digest,
            ..SetDiff::default()
        };
        for m in new.iter() {
            match old.iter().find(|o| o.version == m.version) {
                None => diff.added.push(entry(m)),
                Some(o) => {
                    let down =
                        |x: &crate::model::Migration| x.down.as_ref().map(|d| d.checksum.clone());
                    if o.name != m.name || o.up.checksum != m.up.checksum || down(o) != down(m) {
                        diff.changed.push(entry(m));
                    }
                }
            }
        }
        for o in old.iter() {
            if !new.iter().any(|m| m.version == o.version) {
                diff.removed.push(entry(o));
            }
        }
        Ok(diff)
    }

    /// Stored set `set` parsed as it was published (its dialect and format), its files
    /// checked against their SHA-256 first; with its digest.
    async fn parsed(&self, set: &str) -> Result<(String, MigrationSet), EngineError> {
        let (stored, files) = self.get_set(set).await?;
        let dialect = stored
            .dialect
            .parse::<DialectKind>()
            .unwrap_or(DialectKind::Postgres);
        let format = stored
            .format
            .parse::<SetFormat>()
            .unwrap_or(SetFormat::Auto);
        let files: Vec<SetFile> = files
            .into_iter()
            .map(|f| SetFile {
                path: f.path,
                bytes: f.bytes,
            })
            .collect();
        let loaded = tokio::task::spawn_blocking(move || load_published(&files, dialect, format))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        Ok((stored.digest, loaded))
    }

    /// Deletes the published sets past `set_retention` that no tag names, no rollout in
    /// the store pinned and no fleet of this daemon follows by digest; each is logged and
    /// has its audit entry (caller `set_retention`). The digests deleted.
    ///
    /// # Errors
    /// [`EngineError::Store`]; the sets deleted before the failure stay deleted.
    pub(crate) async fn collect_sets(&self) -> Result<Vec<String>, EngineError> {
        let retention = self.set_limits.retention;
        let cutoff = crate::store::now_ms()
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let keep: Vec<String> = self
            .registry
            .fleets()
            .filter_map(|f| match f.follows() {
                Some(SetRef::Digest(d)) => Some(d),
                _ => None,
            })
            .collect();
        let collected = self
            .runner
            .store()
            .collect_sets(cutoff, &keep, "set_retention")
            .await?;
        for set in &collected {
            tracing::info!(
                digest = %set.digest,
                bytes = set.bytes,
                published_at_unix_ms = set.published_at,
                retention_s = retention.as_secs(),
                "untagged published set collected: past set_retention, used by no rollout or fleet"
            );
        }
        Ok(collected.into_iter().map(|s| s.digest).collect())
    }

    /// The configured fleets that follow tag `name` (`migrations = "published:NAME"`).
    pub(crate) fn followers(&self, name: &str) -> Vec<String> {
        self.registry
            .fleets()
            .filter(|f| f.follows() == Some(SetRef::Tag(name.to_owned())))
            .map(|f| f.name.clone())
            .collect()
    }

    /// Reads the published set of every fleet that follows one, so `ListFleets` and
    /// health show it; each change between available and not is logged once, and a fleet
    /// whose set is not available is broken (its operations say why) until it is.
    pub(crate) async fn follow_published(&self) {
        for fleet in self.registry.fleets() {
            if fleet.follows().is_none() {
                continue;
            }
            match self.set_for(fleet, None).await {
                Ok(set) => {
                    if fleet.note_published(None) {
                        tracing::info!(fleet = %fleet.name, digest = %set.digest(), "fleet follows its published set");
                    }
                }
                Err(e) => {
                    if fleet.note_published(Some(e.to_string())) {
                        tracing::warn!(fleet = %fleet.name, "fleet broken: its published set is not available: {e}");
                    }
                }
            }
        }
    }
}

/// `name` as a tag, or why not.
fn check_tag(name: &str) -> Result<(), SetError> {
    match tag_refusal(name) {
        Some(reason) => Err(SetError::BadTag {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}
