//! Why a request's field does not convert ([`RequestError`]): each refusal of `receive.rs`,
//! typed, with the field it names. Every one is `INVALID_ARGUMENT` with the reason
//! `INVALID_REQUEST` (docs/errors.md); the message is the sentence a person reads.

use crate::{engine::SelectorError, model::VersionError};

/// A request field that does not make sense on its own (→ `INVALID_ARGUMENT`, reason
/// `INVALID_REQUEST`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A fleet name or tenant id not of the id syntax (`[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`).
    #[error("{field}: {reason}")]
    Name {
        /// `fleet`, `tenant` or `tenant id`.
        field: &'static str,
        /// Why, as `model::check_id` says it.
        reason: String,
    },
    /// The request's label selector does not parse (the error quotes it).
    #[error("{0}")]
    Selector(#[source] SelectorError),
    /// The strategy's `canary_selector` does not parse.
    #[error("strategy.canary_selector: {0}")]
    CanarySelector(#[source] SelectorError),
    /// An enum field with a value the API does not define.
    #[error("{field} {value} is not a {what}")]
    UnknownEnum {
        /// `transaction` or `state`.
        field: &'static str,
        /// The number sent.
        value: i32,
        /// What it should be: `transaction mode`, `rollout state`.
        what: &'static str,
    },
    /// `page_size` above what one page may hold.
    #[error("page_size {size} is above {max}")]
    PageSize {
        /// As asked.
        size: u64,
        /// The most the call pages by.
        max: u64,
    },
    /// A `page_token` this daemon did not hand out.
    #[error("page_token {0:?} is not one of ours")]
    PageToken(String),
    /// A count or percentage (`wave_size`, `max_failures`) that does not parse.
    #[error("{field}: {reason}")]
    Amount {
        /// The strategy's field.
        field: &'static str,
        /// Why, as `model::Amount` says it.
        reason: String,
    },
    /// A backup id that is not a UUID (quoted as sent, bounded).
    #[error("{0:?} is not a backup id (a UUID, as `avocet backups list` shows them)")]
    BackupId(String),
    /// A backup's name longer than 128 characters or holding a control character.
    #[error("name: at most 128 characters, none of them control characters")]
    BackupName,
    /// A `PublishSet` stream out of order: no header first, a second header, no file.
    #[error("{0}")]
    PublishStream(&'static str),
    /// A `PublishSet` header's format or dialect that Avocet does not know (the parser's
    /// sentence, naming what it takes).
    #[error("{0}")]
    PublishHeader(String),
    /// `strategy.concurrency` of 0.
    #[error(
        "strategy.concurrency: 0 tenants at once runs nothing; give 1 or more, or leave it \
         unset for the fleet's setting"
    )]
    ZeroConcurrency,
    /// A wait between waves longer than `max_ms`.
    #[error("strategy.pause_between_waves_ms {ms} is above a day ({max_ms})")]
    WavePause {
        /// As asked, ms.
        ms: u64,
        /// The longest allowed, ms.
        max_ms: u64,
    },
    /// An `expected_set_digest` that is not 64 hex characters.
    #[error("expected_set_digest must be 64 hex characters, not {0:?}")]
    Digest(String),
    /// A rollback of 0 steps.
    #[error("steps must be at least 1")]
    ZeroSteps,
    /// `last_batch` set to false.
    #[error("last_batch must be true when set")]
    LastBatchFalse,
    /// A Status refresh deadline longer than `max_ms`.
    #[error("refresh_timeout_ms {ms} is above {max_ms} (10 minutes)")]
    RefreshTimeout {
        /// As asked, ms.
        ms: u64,
        /// The longest allowed, ms.
        max_ms: u64,
    },
    /// A repair without an action.
    #[error("action must be MARK_APPLIED, MARK_ROLLED_BACK, ACCEPT_CHECKSUM or FORGET")]
    RepairAction,
    /// A repair naming one tenant and a non-empty selector.
    #[error("give one tenant or a tenant selector, not both")]
    TenantAndSelector,
    /// A rollout id that is not a UUID.
    #[error("{0:?} is not a rollout id")]
    RolloutId(String),
    /// `adopt_from` naming no tool Avocet adopts from.
    #[error("adopt_from: {0:?} is not sqlx, diesel, golang-migrate, dbmate, flyway or refinery")]
    AdoptFrom(String),
    /// A version field that names no version: `field` is the request's field
    /// (`target_version`, `to_version`, `version`).
    #[error("{field}: {cause}")]
    Version {
        /// The request's field.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        cause: VersionFieldError,
    },
}

/// Why a request's `Version` field names no version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionFieldError {
    /// None of `number`, `text` or `repeatable` is set.
    #[error("a version needs one of number, text or repeatable")]
    Empty,
    /// A version below 0, as the request wrote it (cut at 128 bytes).
    #[error("a version is 0 or more, not {0}")]
    Negative(String),
    /// A text or repeatable description that is no version.
    #[error(transparent)]
    Malformed(#[from] VersionError),
}
