//! Why a fleet could not be built, or a request's fleet or tenants resolved.

use super::SetError;
use crate::{catalog::CatalogError, dialect::DbError};

/// Why fleets could not be built or a request's fleet or tenants could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No fleet has that name.
    #[error("fleet {0:?} not found")]
    UnknownFleet(String),
    /// A selected id is not a tenant of the fleet.
    #[error("fleet {fleet:?} has no tenant {tenant:?}")]
    UnknownTenant {
        /// The fleet.
        fleet: String,
        /// The id.
        tenant: String,
    },
    /// A tenant's target is unusable (bad DSN, schema on a dialect without schemas).
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Target {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// Why.
        source: DbError,
    },
    /// A label selector matched none of the fleet's tenants: an apply or rollback on it
    /// would run on nothing, which is a mistake more often than an intent.
    #[error("fleet {fleet:?}: no tenant matches the selector {selector:?}")]
    NoMatch {
        /// The fleet.
        fleet: String,
        /// The selector, in its canonical syntax.
        selector: String,
    },
    /// A selector names more ids than the fleet has tenants (issue 25, finding 10).
    #[error("fleet {fleet:?}: the selector names {ids} ids; the fleet has {tenants} tenants")]
    TooManyIds {
        /// The fleet.
        fleet: String,
        /// Ids named, repeats included.
        ids: usize,
        /// Tenants the fleet has.
        tenants: usize,
    },
    /// The fleet already has a tenant with this id.
    #[error("fleet {fleet:?} already has a tenant {tenant:?} (from the {existing})")]
    DuplicateTenant {
        /// The fleet.
        fleet: String,
        /// The id.
        tenant: String,
        /// Where the existing tenant comes from ([`TenantSource::origin`]).
        existing: &'static str,
    },
    /// The tenant comes from the configuration file, so only the file can remove it.
    #[error("fleet {fleet:?}: tenant {tenant:?} is in the configuration file; remove it there")]
    Configured {
        /// The fleet.
        fleet: String,
        /// The id.
        tenant: String,
    },
    /// A tenant has no DSN, the fleet's `dsn_template` does not render for it, or its
    /// password cannot be put in.
    #[error("fleet {fleet:?}, tenant {tenant:?}: {source}")]
    Dsn {
        /// The fleet.
        fleet: String,
        /// The tenant.
        tenant: String,
        /// Why; never the DSN itself.
        source: crate::config::DsnError,
    },
    /// The fleet's registration policy (`allowed_hosts`, `sqlite_root`) is unusable.
    #[error("fleet {fleet:?}: {source}")]
    Policy {
        /// The fleet.
        fleet: String,
        /// Why.
        source: crate::config::PolicyError,
    },
    /// A `session_init` entry is not exactly one statement (the engine counts statements to
    /// locate failures, and replays these after every reset).
    #[error("fleet {fleet:?}: session_init[{index}] must be exactly one statement, not {found}")]
    SessionInit {
        /// The fleet.
        fleet: String,
        /// The entry's index.
        index: usize,
        /// Statements found.
        found: usize,
    },
    /// The fleet's migration set does not load.
    #[error("fleet {fleet:?}: migration set: {source}")]
    Catalog {
        /// The fleet.
        fleet: String,
        /// Why, naming the file.
        source: CatalogError,
    },
    /// The published set the fleet follows (or a rollout pinned) is not available here.
    #[error("fleet {fleet:?}: {source}")]
    Published {
        /// The fleet.
        fleet: String,
        /// Why.
        source: SetError,
    },
}
