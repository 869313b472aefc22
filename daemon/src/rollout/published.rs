//! Published sets read from the control store: each stored file checked against the
//! SHA-256 recorded when it was published, then parsed once per replica with the fleet's
//! dialect ([`Fleet::install_published`]). A rollout pinned to a published set is joined
//! by a replica that never saw it: the set is read here first.

use std::{str::FromStr, sync::Arc};

use sha2::{Digest, Sha256};

use super::Runner;
use crate::{
    fleet::{Fleet, SetError, SetFile},
    model::{MigrationSet, RolloutRecord, SetFormat},
    store::{Store, StoreError},
};

/// Published set `digest` as `fleet` runs it: parsed here already, or read from `store`,
/// checked and parsed (once).
///
/// # Errors
/// The outer [`StoreError`] when the store cannot be read; the inner [`SetError`]:
/// [`SetError::NotFound`] when no stored set has the digest, [`SetError::Tampered`] when a
/// stored file's bytes no longer match its SHA-256 (or the files make another digest),
/// [`SetError::Invalid`] when the set does not load with the fleet's dialect.
pub(crate) async fn published_set(
    store: &Store,
    fleet: &Fleet,
    digest: &str,
) -> Result<Result<Arc<MigrationSet>, SetError>, StoreError> {
    if let Some(set) = fleet.published(digest) {
        return Ok(Ok(set));
    }
    let Some(stored) = store.published_set(digest).await? else {
        return Ok(Err(SetError::NotFound(digest.to_owned())));
    };
    let files = store.set_files(digest).await?;
    let mut checked = Vec::with_capacity(files.len());
    for f in files {
        let sha = hex::encode(Sha256::digest(&f.bytes));
        if sha != f.sha256 {
            return Ok(Err(SetError::Tampered {
                digest: digest.to_owned(),
                what: format!(
                    "file {:?} has SHA-256 {sha}, {} when published",
                    f.path, f.sha256
                ),
            }));
        }
        checked.push(SetFile {
            path: f.path,
            bytes: f.bytes,
        });
    }
    if checked.len() as i64 != stored.file_count {
        return Ok(Err(SetError::Tampered {
            digest: digest.to_owned(),
            what: format!(
                "{} files stored, {} when published",
                checked.len(),
                stored.file_count
            ),
        }));
    }
    let format = SetFormat::from_str(&stored.format).unwrap_or(SetFormat::Auto);
    Ok(fleet.install_published(digest, format, &checked))
}

impl Runner {
    /// Reads the published set rollout `record` pinned, when this replica's fleet does not
    /// have it yet (its own set has another digest): best effort, so joining then finds
    /// it; a failure is left to [`Runner::scope_of`] to report.
    pub(super) async fn prepare_pinned(&self, record: &RolloutRecord) {
        let Ok(fleet) = self.registry.fleet(&record.spec.fleet) else {
            return;
        };
        let digest = &record.spec.set_digest;
        if fleet.published(&digest.0).is_some()
            || (fleet.follows().is_none() && fleet.load_set().is_ok_and(|s| s.digest() == digest))
        {
            return;
        }
        match published_set(&self.store, fleet, &digest.0).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(rollout_id = %record.id, "pinned set: {e}"),
            Err(e) => tracing::warn!(rollout_id = %record.id, "reading a pinned set: {e}"),
        }
    }
}
