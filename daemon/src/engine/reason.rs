//! What a failure is, for machines: each [`EngineError`] classified once into a [`Reason`]
//! (a stable code, sent as `google.rpc.ErrorInfo`'s `reason`), its [`ErrorKind`] (the gRPC
//! code) and the [`Subject`] it names (fleet, tenant, version, rollout). The codes are a
//! contract: docs/errors.md lists them; a code is never renamed or reused.

use super::EngineError;
use crate::{
    backup::{BackupError, RestoreError},
    dialect::DbError,
    fleet::{FleetError, SetError},
    migrate::RepairError,
    model::MigrationKey,
    rollout::RunnerError,
};

/// What kind of failure an [`EngineError`] is; the API maps each to one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or out of range.
    InvalidArgument,
    /// A fleet or tenant does not exist.
    NotFound,
    /// The system is not in the state the request needs.
    FailedPrecondition,
    /// What the request would create exists already, e.g. a tenant id.
    AlreadyExists,
    /// A tenant could not be reached.
    Unavailable,
    /// A wait ran out, such as a tenant lock.
    DeadlineExceeded,
    /// The daemon is shutting down.
    Aborted,
    /// A limit of the daemon is reached, such as its running rollouts.
    ResourceExhausted,
    /// Stored data no longer matches what was written, such as a published set edited in
    /// the control store.
    DataLoss,
    /// A database operation failed unexpectedly.
    Internal,
}

/// Why a request failed, one value per cause a client may act on; [`Reason::code`] is its
/// wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A required field is empty (`fleet`, `tenant`).
    MissingField,
    /// No fleet has the name.
    FleetNotFound,
    /// The fleet has no tenant with the id.
    TenantNotFound,
    /// A label selector matched no tenant.
    NoTenantMatches,
    /// A selector names more ids than the fleet has tenants.
    TooManyIds,
    /// The fleet has the tenant id already.
    TenantExists,
    /// The tenant comes from the configuration file; only the file removes it.
    TenantConfigured,
    /// A tenant's DSN or schema is unusable (bad DSN, wrong scheme, no DSN).
    TargetInvalid,
    /// The fleet's configuration is unusable (e.g. a `session_init` entry).
    FleetMisconfigured,
    /// The fleet's migration set does not load (a file that does not parse, a duplicate).
    SetInvalid,
    /// The fleet's set is not the one the request (or the rollout) started with.
    SetChanged,
    /// The tenant lock did not come within the fleet's `lock_timeout`.
    LockTimeout,
    /// The tenant lock was lost while the request held it.
    LockLost,
    /// The tenant's database could not be reached.
    TenantUnreachable,
    /// A statement on the tenant failed unexpectedly.
    DatabaseError,
    /// A target version that is a repeatable's key.
    RepeatableTarget,
    /// A target version that is not in the set.
    VersionNotFound,
    /// A rollback target above the set's latest version.
    TargetAboveLatest,
    /// A strategy out of range (concurrency, wave size, pause, canary selector).
    InvalidStrategy,
    /// `transaction = "tenant"` that the dialect or the set cannot hold.
    GroupedModeUnavailable,
    /// An adoption that names no tool.
    AdoptNeedsFormat,
    /// A page token this daemon did not hand out.
    InvalidPageToken,
    /// A watch from past the end of a finished rollout.
    SequenceOutOfRange,
    /// A tenant id, schema or label that is not a valid name.
    InvalidName,
    /// A registered DSN the fleet's registration policy refuses.
    RegistrationRefused,
    /// A registered DSN that names another fleet's tenant's database.
    DatabaseTaken,
    /// Repair `--mark applied`: the version has no `failed` or `running` record.
    NothingToRepair,
    /// Repair: the version is not in the set.
    VersionNotInSet,
    /// Repair `--accept-checksum`: the version has no applied record.
    NoAppliedRecord,
    /// Repair: forget is for a version whose file is gone, and this one's is not.
    VersionStillInSet,
    /// Refresh of a fleet without a discovery query.
    NoDiscovery,
    /// The fleet's discovery query failed.
    DiscoveryFailed,
    /// No rollout has the id.
    RolloutNotFound,
    /// The rollout's state does not allow the action.
    RolloutStateConflict,
    /// Tenants of the rollout need `repair` before it resumes.
    NeedsRepair,
    /// The rollout's fleet is gone or its set does not load.
    RolloutFleetUnavailable,
    /// As many rollouts run as the daemon's limits allow.
    TooManyRollouts,
    /// The daemon is shutting down.
    ShuttingDown,
    /// The control store failed.
    StoreUnavailable,
    /// No backup of the fleet has the id.
    BackupNotFound,
    /// A restore names a backup of another tenant, or one that failed when taken.
    BackupMismatch,
    /// A restore of a tenant that a rollout not yet over holds.
    TenantInRollout,
    /// The database's backup or restore tool is not installed where the daemon looks.
    BackupToolMissing,
    /// The backup or restore tool failed, ran past its timeout, or its directory or file
    /// could not be written or read.
    BackupFailed,
    /// A backup's file is missing or changed since it was taken (its SHA-256 differs).
    BackupFileChanged,
    /// A restore ran, but the history's newest version is not the backup's.
    RestoreUnverified,
    /// No published set has the digest, or no tag the name.
    SetNotFound,
    /// A set to publish is refused: a file's path, a file that does not load, a tag's name.
    SetRefused,
    /// A set to publish is above `max_set_bytes` or `max_set_files`.
    SetTooLarge,
    /// A published set's stored files no longer match their SHA-256 or its digest.
    SetTampered,
    /// A published set a fleet follows or an unfinished rollout pinned: not deleted.
    SetInUse,
}

impl Reason {
    /// The wire name: stable, `UPPER_SNAKE` (`google.rpc.ErrorInfo.reason`, at most 63
    /// characters of `[A-Z0-9_]`).
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingField => "MISSING_FIELD",
            Self::FleetNotFound => "FLEET_NOT_FOUND",
            Self::TenantNotFound => "TENANT_NOT_FOUND",
            Self::NoTenantMatches => "NO_TENANT_MATCHES",
            Self::TooManyIds => "TOO_MANY_IDS",
            Self::TenantExists => "TENANT_EXISTS",
            Self::TenantConfigured => "TENANT_CONFIGURED",
            Self::TargetInvalid => "TARGET_INVALID",
            Self::FleetMisconfigured => "FLEET_MISCONFIGURED",
            Self::SetInvalid => "SET_INVALID",
            Self::SetChanged => "SET_CHANGED",
            Self::LockTimeout => "LOCK_TIMEOUT",
            Self::LockLost => "LOCK_LOST",
            Self::TenantUnreachable => "TENANT_UNREACHABLE",
            Self::DatabaseError => "DATABASE_ERROR",
            Self::RepeatableTarget => "REPEATABLE_TARGET",
            Self::VersionNotFound => "VERSION_NOT_FOUND",
            Self::TargetAboveLatest => "TARGET_ABOVE_LATEST",
            Self::InvalidStrategy => "INVALID_STRATEGY",
            Self::GroupedModeUnavailable => "GROUPED_MODE_UNAVAILABLE",
            Self::AdoptNeedsFormat => "ADOPT_NEEDS_FORMAT",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::SequenceOutOfRange => "SEQUENCE_OUT_OF_RANGE",
            Self::InvalidName => "INVALID_NAME",
            Self::RegistrationRefused => "REGISTRATION_REFUSED",
            Self::DatabaseTaken => "DATABASE_TAKEN",
            Self::NothingToRepair => "NOTHING_TO_REPAIR",
            Self::VersionNotInSet => "VERSION_NOT_IN_SET",
            Self::NoAppliedRecord => "NO_APPLIED_RECORD",
            Self::VersionStillInSet => "VERSION_STILL_IN_SET",
            Self::NoDiscovery => "NO_DISCOVERY",
            Self::DiscoveryFailed => "DISCOVERY_FAILED",
            Self::RolloutNotFound => "ROLLOUT_NOT_FOUND",
            Self::RolloutStateConflict => "ROLLOUT_STATE_CONFLICT",
            Self::NeedsRepair => "NEEDS_REPAIR",
            Self::RolloutFleetUnavailable => "ROLLOUT_FLEET_UNAVAILABLE",
            Self::TooManyRollouts => "TOO_MANY_ROLLOUTS",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::BackupNotFound => "BACKUP_NOT_FOUND",
            Self::BackupMismatch => "BACKUP_MISMATCH",
            Self::TenantInRollout => "TENANT_IN_ROLLOUT",
            Self::BackupToolMissing => "BACKUP_TOOL_MISSING",
            Self::BackupFailed => "BACKUP_FAILED",
            Self::BackupFileChanged => "BACKUP_FILE_CHANGED",
            Self::RestoreUnverified => "RESTORE_UNVERIFIED",
            Self::SetNotFound => "SET_NOT_FOUND",
            Self::SetRefused => "SET_REFUSED",
            Self::SetTooLarge => "SET_TOO_LARGE",
            Self::SetTampered => "SET_TAMPERED",
            Self::SetInUse => "SET_IN_USE",
        }
    }

    /// The kind of failure, hence the gRPC code: one per reason.
    pub fn kind(self) -> ErrorKind {
        match self {
            Self::MissingField
            | Self::TooManyIds
            | Self::RepeatableTarget
            | Self::VersionNotFound
            | Self::TargetAboveLatest
            | Self::InvalidStrategy
            | Self::AdoptNeedsFormat
            | Self::InvalidPageToken
            | Self::SequenceOutOfRange
            | Self::InvalidName
            | Self::RegistrationRefused
            | Self::DatabaseTaken
            | Self::SetRefused => ErrorKind::InvalidArgument,
            Self::FleetNotFound
            | Self::TenantNotFound
            | Self::NoTenantMatches
            | Self::RolloutNotFound
            | Self::BackupNotFound => ErrorKind::NotFound,
            Self::SetNotFound => ErrorKind::NotFound,
            Self::TenantExists => ErrorKind::AlreadyExists,
            Self::TenantConfigured
            | Self::TargetInvalid
            | Self::FleetMisconfigured
            | Self::SetInvalid
            | Self::SetChanged
            | Self::GroupedModeUnavailable
            | Self::NothingToRepair
            | Self::VersionNotInSet
            | Self::NoAppliedRecord
            | Self::VersionStillInSet
            | Self::NoDiscovery
            | Self::RolloutStateConflict
            | Self::NeedsRepair
            | Self::RolloutFleetUnavailable
            | Self::BackupMismatch
            | Self::TenantInRollout
            | Self::BackupToolMissing
            | Self::BackupFileChanged
            | Self::SetInUse => ErrorKind::FailedPrecondition,
            Self::LockTimeout => ErrorKind::DeadlineExceeded,
            Self::TenantUnreachable | Self::DiscoveryFailed | Self::StoreUnavailable => {
                ErrorKind::Unavailable
            }
            Self::LockLost | Self::DatabaseError | Self::BackupFailed | Self::RestoreUnverified => {
                ErrorKind::Internal
            }
            Self::TooManyRollouts | Self::SetTooLarge => ErrorKind::ResourceExhausted,
            Self::SetTampered => ErrorKind::DataLoss,
            Self::ShuttingDown => ErrorKind::Aborted,
        }
    }
}

/// What a failure names, where it is known: sent as `google.rpc.ErrorInfo`'s metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The fleet.
    pub fleet: Option<&'a str>,
    /// The tenant.
    pub tenant: Option<&'a str>,
    /// The migration version.
    pub version: Option<MigrationKey>,
    /// The rollout's id.
    pub rollout: Option<&'a str>,
}

impl<'a> Subject<'a> {
    fn fleet(fleet: &'a str) -> Self {
        Self {
            fleet: Some(fleet),
            ..Self::default()
        }
    }

    fn tenant(fleet: &'a str, tenant: &'a str) -> Self {
        Self {
            tenant: Some(tenant),
            ..Self::fleet(fleet)
        }
    }

    fn version(fleet: &'a str, version: impl Into<MigrationKey>) -> Self {
        Self {
            version: Some(version.into()),
            ..Self::fleet(fleet)
        }
    }

    fn rollout(id: &'a str) -> Self {
        Self {
            rollout: Some(id),
            ..Self::default()
        }
    }
}

impl EngineError {
    /// Why it failed, for machines (the one classification: [`EngineError::kind`] is its
    /// reason's kind).
    pub fn reason(&self) -> Reason {
        match self {
            Self::Missing(_) => Reason::MissingField,
            Self::InvalidTarget(_) => Reason::RegistrationRefused,
            Self::Fleet(e) => fleet_reason(e),
            Self::Tenant { source, .. } => db_reason(source),
            Self::SetChanged { .. } => Reason::SetChanged,
            Self::RepeatableTarget { .. } | Self::RepeatableRollbackTarget { .. } => {
                Reason::RepeatableTarget
            }
            Self::UnknownVersion { .. } => Reason::VersionNotFound,
            Self::NothingToRollBack { .. } => Reason::TargetAboveLatest,
            Self::Strategy(_) => Reason::InvalidStrategy,
            Self::GroupedWithoutTransactionalDdl { .. }
            | Self::GroupedOutsideTransaction { .. } => Reason::GroupedModeUnavailable,
            Self::AdoptNeedsFormat => Reason::AdoptNeedsFormat,
            Self::PageToken(_) => Reason::InvalidPageToken,
            Self::PastLastEvent { .. } => Reason::SequenceOutOfRange,
            Self::InvalidName { .. } => Reason::InvalidName,
            Self::Registration { .. } => Reason::RegistrationRefused,
            Self::DatabaseTaken { .. } => Reason::DatabaseTaken,
            Self::Repair { source, .. } => match source {
                RepairError::Db(e) => db_reason(e),
                RepairError::NothingToRepair { .. } => Reason::NothingToRepair,
                RepairError::NotInSet { .. } => Reason::VersionNotInSet,
                RepairError::NoDrift { .. } => Reason::NoAppliedRecord,
                RepairError::NotGone { .. } => Reason::VersionStillInSet,
            },
            Self::NoDiscovery(_) => Reason::NoDiscovery,
            Self::Rollout(e) => match e {
                RunnerError::NotFound(_) => Reason::RolloutNotFound,
                RunnerError::State { .. } => Reason::RolloutStateConflict,
                RunnerError::NeedsRepair { .. } => Reason::NeedsRepair,
                RunnerError::SetChanged { .. } => Reason::SetChanged,
                RunnerError::Fleet { .. } => Reason::RolloutFleetUnavailable,
                RunnerError::Store(_) => Reason::StoreUnavailable,
            },
            Self::ShuttingDown => Reason::ShuttingDown,
            Self::TooManyRollouts { .. }
            | Self::TooManyInFleet { .. }
            | Self::TooManyForIdentity { .. }
            | Self::LineFull { .. } => Reason::TooManyRollouts,
            Self::UnknownRollout(_) => Reason::RolloutNotFound,
            Self::Store(_) => Reason::StoreUnavailable,
            Self::Discovery(_) => Reason::DiscoveryFailed,
            Self::UnknownBackup { .. } => Reason::BackupNotFound,
            Self::BackupOfAnotherTenant { .. } | Self::BackupNotTaken { .. } => {
                Reason::BackupMismatch
            }
            Self::TenantInRollout { .. } => Reason::TenantInRollout,
            Self::Backup { source, .. } => backup_reason(source),
            Self::Restore { source, .. } => match &**source {
                RestoreError::FileChanged { .. } => Reason::BackupFileChanged,
                RestoreError::VersionMismatch { .. } => Reason::RestoreUnverified,
                RestoreError::Backup(e) => backup_reason(e),
            },
            Self::Set(e) => set_reason(e),
        }
    }

    /// The fleet, tenant, version and rollout it names, where known.
    pub fn subject(&self) -> Subject<'_> {
        match self {
            Self::Fleet(e) => fleet_subject(e),
            Self::InvalidTarget(e) => fleet_subject(e),
            Self::Tenant { fleet, tenant, .. }
            | Self::Registration { fleet, tenant, .. }
            | Self::DatabaseTaken { fleet, tenant, .. } => Subject::tenant(fleet, tenant),
            Self::Repair {
                fleet,
                tenant,
                source,
            } => Subject {
                version: match source {
                    RepairError::Db(_) => None,
                    RepairError::NothingToRepair { version }
                    | RepairError::NotInSet { version }
                    | RepairError::NoDrift { version }
                    | RepairError::NotGone { version } => Some(version.clone()),
                },
                ..Subject::tenant(fleet, tenant)
            },
            Self::SetChanged { fleet, .. }
            | Self::GroupedWithoutTransactionalDdl { fleet, .. }
            | Self::NoDiscovery(fleet)
            | Self::TooManyInFleet { fleet, .. }
            | Self::LineFull { fleet, .. } => Subject::fleet(fleet),
            Self::RepeatableTarget { fleet, version }
            | Self::RepeatableRollbackTarget { fleet, version }
            | Self::GroupedOutsideTransaction { fleet, version, .. } => {
                Subject::version(fleet, version.clone())
            }
            Self::UnknownVersion { fleet, version }
            | Self::NothingToRollBack { fleet, version, .. } => Subject::version(fleet, *version),
            Self::PastLastEvent { rollout, .. } | Self::UnknownRollout(rollout) => {
                Subject::rollout(rollout)
            }
            Self::Rollout(e) => match e {
                RunnerError::NotFound(id)
                | RunnerError::State { id, .. }
                | RunnerError::NeedsRepair { id, .. }
                | RunnerError::SetChanged { id, .. } => Subject::rollout(id),
                RunnerError::Fleet { id, source } => Subject {
                    rollout: Some(id),
                    ..fleet_subject(source)
                },
                RunnerError::Store(_) => Subject::default(),
            },
            Self::Discovery(e) => Subject::fleet(&e.fleet),
            Self::UnknownBackup { fleet, .. } => Subject::fleet(fleet),
            Self::BackupOfAnotherTenant { fleet, tenant, .. }
            | Self::BackupNotTaken { fleet, tenant, .. }
            | Self::Backup { fleet, tenant, .. }
            | Self::Restore { fleet, tenant, .. } => Subject::tenant(fleet, tenant),
            Self::TenantInRollout {
                fleet,
                tenant,
                rollout,
            } => Subject {
                rollout: Some(rollout),
                ..Subject::tenant(fleet, tenant)
            },
            Self::Missing(_)
            | Self::Strategy(_)
            | Self::AdoptNeedsFormat
            | Self::PageToken(_)
            | Self::InvalidName { .. }
            | Self::ShuttingDown
            | Self::TooManyRollouts { .. }
            | Self::TooManyForIdentity { .. }
            | Self::Store(_)
            | Self::Set(_) => Subject::default(),
        }
    }
}

/// The reason of a fleet lookup or set failure.
fn fleet_reason(e: &FleetError) -> Reason {
    match e {
        FleetError::UnknownFleet(_) => Reason::FleetNotFound,
        FleetError::UnknownTenant { .. } => Reason::TenantNotFound,
        FleetError::NoMatch { .. } => Reason::NoTenantMatches,
        FleetError::TooManyIds { .. } => Reason::TooManyIds,
        FleetError::DuplicateTenant { .. } => Reason::TenantExists,
        FleetError::Configured { .. } => Reason::TenantConfigured,
        FleetError::Target { .. } | FleetError::Dsn { .. } => Reason::TargetInvalid,
        FleetError::SessionInit { .. } | FleetError::Policy { .. } => Reason::FleetMisconfigured,
        FleetError::Catalog { .. } => Reason::SetInvalid,
        FleetError::Published { source, .. } => match source {
            SetError::NotFound(_) => Reason::SetNotFound,
            SetError::Tampered { .. } => Reason::SetTampered,
            _ => Reason::SetInvalid,
        },
    }
}

/// The reason of a set refused through the API.
fn set_reason(e: &SetError) -> Reason {
    match e {
        SetError::NotFound(_) => Reason::SetNotFound,
        SetError::Invalid(_) | SetError::Path { .. } | SetError::Archive(_) => Reason::SetRefused,
        SetError::BadTag { .. } => Reason::InvalidName,
        SetError::TooLarge { .. } | SetError::TooManyFiles { .. } => Reason::SetTooLarge,
        SetError::Tampered { .. } => Reason::SetTampered,
        SetError::InUse { .. } => Reason::SetInUse,
    }
}

/// What a fleet error names.
fn fleet_subject(e: &FleetError) -> Subject<'_> {
    match e {
        FleetError::UnknownFleet(fleet)
        | FleetError::NoMatch { fleet, .. }
        | FleetError::TooManyIds { fleet, .. }
        | FleetError::SessionInit { fleet, .. }
        | FleetError::Policy { fleet, .. }
        | FleetError::Catalog { fleet, .. }
        | FleetError::Published { fleet, .. } => Subject::fleet(fleet),
        FleetError::UnknownTenant { fleet, tenant }
        | FleetError::Target { fleet, tenant, .. }
        | FleetError::DuplicateTenant { fleet, tenant, .. }
        | FleetError::Configured { fleet, tenant }
        | FleetError::Dsn { fleet, tenant, .. } => Subject::tenant(fleet, tenant),
    }
}

/// The reason of a backup's (or a restore's tool's) failure.
fn backup_reason(e: &BackupError) -> Reason {
    match e {
        BackupError::ToolMissing { .. } | BackupError::FleetTool { .. } => {
            Reason::BackupToolMissing
        }
        BackupError::Db(e) => db_reason(e),
        BackupError::Store(_) => Reason::StoreUnavailable,
        BackupError::Dsn => Reason::TargetInvalid,
        _ => Reason::BackupFailed,
    }
}

/// The reason of a database failure on one tenant.
fn db_reason(e: &DbError) -> Reason {
    match e {
        DbError::LockTimeout { .. } => Reason::LockTimeout,
        DbError::LockLost { .. } => Reason::LockLost,
        DbError::Dsn { .. } | DbError::Scheme { .. } | DbError::Unsupported(_) => {
            Reason::TargetInvalid
        }
        e if e.is_unreachable() => Reason::TenantUnreachable,
        _ => Reason::DatabaseError,
    }
}
