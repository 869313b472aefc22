//! Rust client for `avocetd`: a typed wrapper over the generated `avocet.v1` clients.
//!
//! ```no_run
//! # async fn demo() -> Result<(), avocet_client::ClientError> {
//! use avocet_client::{Client, pb};
//! let mut client = Client::connect("http://127.0.0.1:7400").await?;
//! let mut events = client
//!     .apply(pb::ApplyRequest { fleet: "demo".into(), ..Default::default() })
//!     .await?;
//! while let Some(event) = events.message().await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

use avocet_proto::v1::{fleet_client::FleetClient, migrator_client::MigratorClient};
use tonic::{Streaming, transport::Channel};

pub use avocet_proto::v1 as pb;

/// Default daemon address, also the default of the command line's `--addr`.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7400";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address is not a valid URI.
    #[error("invalid daemon address {addr:?}: {message}")]
    Address {
        /// The address given.
        addr: String,
        /// Why it does not parse.
        message: String,
    },
    /// No connection to the daemon.
    #[error("cannot reach avocetd at {addr} (is it running?)")]
    Connect {
        /// The address tried.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// The daemon answered with an error status; its message names fleet, tenant, version.
    #[error("{} ({:?})", .0.message(), .0.code())]
    Status(tonic::Status),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

impl ClientError {
    /// The gRPC status code, for [`ClientError::Status`].
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// A connection to one `avocetd`. Cheap to clone (one shared HTTP/2 channel).
#[derive(Clone)]
pub struct Client {
    migrator: MigratorClient<Channel>,
    fleet: FleetClient<Channel>,
}

/// A server stream of rollout events; `message().await` yields `Ok(None)` at the end.
pub type Events = Streaming<pb::RolloutEvent>;

impl Client {
    /// Connects to `addr` (`http://host:port`).
    ///
    /// # Errors
    /// [`ClientError::Address`] for a malformed address, [`ClientError::Connect`] when the
    /// daemon does not answer.
    pub async fn connect(addr: impl Into<String>) -> Result<Self, ClientError> {
        let addr = addr.into();
        let endpoint = Channel::from_shared(addr.clone()).map_err(|e| ClientError::Address {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            migrator: MigratorClient::new(channel.clone()),
            fleet: FleetClient::new(channel),
        }
    }

    /// `Migrator.Plan`: what would run on each tenant. Touches nothing.
    ///
    /// # Errors
    /// [`ClientError::Status`]: `NOT_FOUND` for an unknown fleet or tenant,
    /// `INVALID_ARGUMENT` for a bad selector or target, `FAILED_PRECONDITION` for a
    /// migration set that does not load.
    pub async fn plan(&mut self, req: pb::PlanRequest) -> Result<pb::PlanResponse, ClientError> {
        Ok(self.migrator.plan(req).await?.into_inner())
    }

    /// `Migrator.Apply`: starts a rollout and streams its events.
    ///
    /// # Errors
    /// As [`Client::plan`], plus `ABORTED` while the daemon shuts down. Per-tenant failures
    /// arrive as events, not errors.
    pub async fn apply(&mut self, req: pb::ApplyRequest) -> Result<Events, ClientError> {
        Ok(self.migrator.apply(req).await?.into_inner())
    }

    /// `Migrator.Rollback`: starts a rollback rollout and streams its events.
    ///
    /// # Errors
    /// As [`Client::apply`].
    pub async fn rollback(&mut self, req: pb::RollbackRequest) -> Result<Events, ClientError> {
        Ok(self.migrator.rollback(req).await?.into_inner())
    }

    /// `Migrator.Verify`: drift, missing versions, failed records and pending counts.
    ///
    /// # Errors
    /// As [`Client::plan`].
    pub async fn verify(
        &mut self,
        req: pb::VerifyRequest,
    ) -> Result<pb::VerifyResponse, ClientError> {
        Ok(self.migrator.verify(req).await?.into_inner())
    }

    /// `Migrator.Status`: the fleet summary.
    ///
    /// # Errors
    /// As [`Client::plan`].
    pub async fn status(
        &mut self,
        req: pb::StatusRequest,
    ) -> Result<pb::StatusResponse, ClientError> {
        Ok(self.migrator.status(req).await?.into_inner())
    }

    /// `Migrator.Repair`: resolves a `failed` or `running` record.
    ///
    /// # Errors
    /// As [`Client::plan`], plus `FAILED_PRECONDITION` when the version has no such record,
    /// `DEADLINE_EXCEEDED` when the tenant lock does not come, `UNAVAILABLE` when the tenant
    /// is unreachable.
    pub async fn repair(
        &mut self,
        req: pb::RepairRequest,
    ) -> Result<pb::RepairResponse, ClientError> {
        Ok(self.migrator.repair(req).await?.into_inner())
    }

    /// `Fleet.ListFleets`.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` when a fleet's migration set does not load.
    pub async fn list_fleets(&mut self) -> Result<Vec<pb::FleetInfo>, ClientError> {
        let resp = self.fleet.list_fleets(pb::ListFleetsRequest {}).await?;
        Ok(resp.into_inner().fleets)
    }

    /// `Fleet.ListTenants`.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown fleet, `INVALID_ARGUMENT` for a bad selector.
    pub async fn list_tenants(
        &mut self,
        req: pb::ListTenantsRequest,
    ) -> Result<pb::ListTenantsResponse, ClientError> {
        Ok(self.fleet.list_tenants(req).await?.into_inner())
    }
}

/// Every event of a finished rollout stream.
#[derive(Debug, Clone, Default)]
pub struct RolloutRecord {
    /// All events in order.
    pub events: Vec<pb::RolloutEvent>,
}

impl RolloutRecord {
    /// Reads `events` to the end.
    ///
    /// # Errors
    /// [`ClientError::Status`] when the stream breaks.
    pub async fn collect(mut events: Events) -> Result<Self, ClientError> {
        let mut all = Vec::new();
        while let Some(event) = events.message().await? {
            all.push(event);
        }
        Ok(Self { events: all })
    }

    /// The rollout's summary, if the stream reached the end.
    pub fn finished(&self) -> Option<&pb::RolloutFinished> {
        self.events.iter().rev().find_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::RolloutFinished(f)) => Some(f),
            _ => None,
        })
    }

    /// Every `TenantFinished` event.
    pub fn tenants(&self) -> impl Iterator<Item = &pb::TenantFinished> {
        self.events.iter().filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::TenantFinished(t)) => Some(t),
            _ => None,
        })
    }

    /// The `TenantFinished` event of `tenant`.
    pub fn tenant(&self, tenant: &str) -> Option<&pb::TenantFinished> {
        self.tenants().find(|t| t.tenant == tenant)
    }

    /// Every `MigrationFinished` event.
    pub fn migrations(&self) -> impl Iterator<Item = &pb::MigrationFinished> {
        self.events.iter().filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::MigrationFinished(m)) => Some(m),
            _ => None,
        })
    }
}
