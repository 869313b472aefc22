//! Sets published through the API, as a fleet serves them: which published set the fleet
//! follows (`migrations = "published:TAG"` or `"digest:HEX"`), every published set this
//! replica has parsed (once per digest, kept while the daemon runs), and [`SetError`], why a
//! published set is refused.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use super::{Fleet, FleetError};
use crate::{
    catalog::{self, CatalogError},
    model::{DialectKind, MigrationSet, SetFormat},
};

pub(crate) use crate::catalog::SetFile;

/// Loads the set made of `files` as a directory holding them loads, with `dialect` and
/// `format` (detected for [`SetFormat::Auto`]): what `PublishSet` validates.
///
/// # Errors
/// [`SetError::Path`] for the first path the rules refuse ([`catalog::path_refusal`]);
/// [`SetError::Invalid`] with the directory load's own error, naming the file.
pub(crate) fn load_published(
    files: &[SetFile],
    dialect: DialectKind,
    format: SetFormat,
) -> Result<MigrationSet, SetError> {
    if let Some((path, reason)) = files
        .iter()
        .find_map(|f| catalog::path_refusal(&f.path).map(|r| (&f.path, r)))
    {
        return Err(SetError::Path {
            path: path.clone(),
            reason,
        });
    }
    catalog::load_files(files, dialect, format).map_err(|e| SetError::Invalid(Box::new(e)))
}

/// What a fleet's `migrations` names: a directory, or a published set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetRef {
    /// `published:TAG`: the set the tag names now.
    Tag(String),
    /// `digest:HEX`: one published set.
    Digest(String),
}

impl SetRef {
    /// The published set `migrations` names (`published:TAG`, `digest:HEX`), or `None` for
    /// a directory.
    pub(crate) fn of_config(migrations: &std::path::Path) -> Option<Self> {
        let text = migrations.to_str()?;
        if let Some(tag) = text.strip_prefix("published:") {
            return Some(Self::Tag(tag.to_owned()));
        }
        text.strip_prefix("digest:")
            .map(|d| Self::Digest(d.to_ascii_lowercase()))
    }

    /// A request's `set`: a digest (64 hex characters) or else a tag's name.
    pub(crate) fn of_request(set: &str) -> Self {
        match looks_like_digest(set) {
            true => Self::Digest(set.to_ascii_lowercase()),
            false => Self::Tag(set.to_owned()),
        }
    }
}

impl std::fmt::Display for SetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag(t) => write!(f, "published:{t}"),
            Self::Digest(d) => write!(f, "digest:{d}"),
        }
    }
}

/// True for 64 hexadecimal characters: a set's digest, never a tag.
fn looks_like_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a tag's name is refused, or `None`: 1 to 128 of `A-Z a-z 0-9 . _ -`, starting with
/// a letter or digit, and not a digest's 64 hex characters (requests take either).
pub(crate) fn tag_refusal(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 128 {
        return Some("a tag is 1 to 128 characters");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("a tag is letters, digits, '.', '_' and '-', starting with a letter or digit");
    }
    if looks_like_digest(name) {
        return Some("a tag of 64 hex characters would read as a digest");
    }
    None
}

/// Why a published set (or one being published) is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// No stored set has the digest, or no tag has the name.
    #[error("no published set {0}")]
    NotFound(String),
    /// The files do not load as a directory holding them would not.
    #[error("the set does not load: {0}")]
    Invalid(#[source] Box<CatalogError>),
    /// A file's path the rules refuse ([`catalog::path_refusal`]).
    #[error("file {path:?}: {reason}: refused")]
    Path {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A set sent as one tar archive that does not read as one (a truncated archive, a
    /// bad header checksum): the reader's error.
    #[error("the tar archive does not read: {0}")]
    Archive(String),
    /// The set is above `[limits] max_set_bytes`.
    #[error(
        "the set is above max_set_bytes ({limit} bytes) at file {path:?}: {bytes} bytes so far"
    )]
    TooLarge {
        /// The file that crossed the limit.
        path: String,
        /// Bytes received so far.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The set has more files than `[limits] max_set_files`.
    #[error("the set has more than max_set_files ({limit}) files at file {path:?}")]
    TooManyFiles {
        /// The file past the limit.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A tag name [`tag_refusal`] refuses.
    #[error("tag {name:?}: {reason}")]
    BadTag {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A set a fleet follows or an unfinished rollout pinned: it is not deleted.
    #[error("published set {digest} is in use by {by}: it is not deleted")]
    InUse {
        /// The set's digest.
        digest: String,
        /// Who uses it: `fleet "eu"`, `rollout 0193…`.
        by: String,
    },
    /// A stored file whose bytes no longer match the SHA-256 recorded when it was
    /// published, or a stored set whose files no longer make its digest: the store was
    /// changed behind Avocet's back. The set is never run.
    #[error(
        "published set {digest}: {what}: the stored set was altered after publishing; \
         it is refused (publish it again under a new digest)"
    )]
    Tampered {
        /// The set's digest.
        digest: String,
        /// What does not match, naming the file.
        what: String,
    },
}

/// Every published set this replica has parsed, by digest, and the one the fleet follows.
#[derive(Default)]
pub(super) struct Published {
    sets: RwLock<HashMap<String, Arc<MigrationSet>>>,
    /// The digest the fleet's `published:TAG` named when last resolved.
    current: RwLock<Option<String>>,
    /// Why the set it follows was not read when last tried, if it was not.
    error: RwLock<Option<String>>,
}

impl Fleet {
    /// The published set this fleet follows, if its `migrations` names one.
    pub(crate) fn follows(&self) -> Option<SetRef> {
        SetRef::of_config(&self.migrations)
    }

    /// Published set `digest`, if this replica has parsed it already.
    pub(crate) fn published(&self, digest: &str) -> Option<Arc<MigrationSet>> {
        self.published
            .sets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    /// Parses published set `digest` from its `files` (already checked against their
    /// SHA-256) with this fleet's dialect, format and lint, and keeps it; a set parsed
    /// already is returned as it is.
    ///
    /// # Errors
    /// [`SetError::Invalid`] when the files do not load for this fleet;
    /// [`SetError::Tampered`] when they load to another digest.
    pub(crate) fn install_published(
        &self,
        digest: &str,
        format: SetFormat,
        files: &[SetFile],
    ) -> Result<Arc<MigrationSet>, SetError> {
        if let Some(set) = self.published(digest) {
            return Ok(set);
        }
        let format = match self.format {
            SetFormat::Auto => format,
            f => f,
        };
        let set = catalog::load_files(files, self.dialect, format)
            .map_err(|e| SetError::Invalid(Box::new(e)))?;
        if set.digest().0 != digest {
            return Err(SetError::Tampered {
                digest: digest.to_owned(),
                what: format!("its files make digest {}", set.digest()),
            });
        }
        let set = Arc::new(set.with_lint(&self.lint));
        self.published
            .sets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest.to_owned(), set.clone());
        Ok(set)
    }

    /// Makes `digest` (parsed already) the set this fleet serves: what its `published:TAG`
    /// names now.
    pub(crate) fn follow_digest(&self, digest: &str) {
        *self
            .published
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(digest.to_owned());
    }

    /// Notes why the published set the fleet follows could not be read (`None`: it was);
    /// true when that changed since the last note, so each change is logged once.
    pub(crate) fn note_published(&self, error: Option<String>) -> bool {
        let mut last = self
            .published
            .error
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let changed = *last != error;
        *last = error;
        changed
    }

    /// The published set this fleet serves now, for [`Fleet::load_set`].
    pub(super) fn current_published(
        &self,
        follows: &SetRef,
    ) -> Result<Arc<MigrationSet>, FleetError> {
        let digest = match follows {
            SetRef::Digest(d) => Some(d.clone()),
            SetRef::Tag(_) => self
                .published
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        digest
            .and_then(|d| self.published(&d))
            .ok_or_else(|| FleetError::Published {
                fleet: self.name.clone(),
                source: SetError::NotFound(format!(
                    "{follows} (not read from the control store yet)"
                )),
            })
    }
}
