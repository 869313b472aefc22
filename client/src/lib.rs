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
//!
//! | file | what |
//! | --- | --- |
//! | `lib.rs` | [`Client`]: connecting, and one method per RPC |
//! | `credentials.rs` | [`Timeouts`], [`Credentials`] (token, TLS, trace context) and the [`Bearer`] interceptor |
//! | `record.rs` | [`RolloutRecord`]: a rollout's stream read to the end; [`Control`] |
//! | `backups.rs` | `avocet.v1.Backups`: list, get, take, delete and restore backups |
//! | `sets.rs` | publishing a set: a directory read and sent in chunks |
//! | `error.rs` | [`ClientError`] and the daemon's typed refusals |

use avocet_proto::v1::{
    backups_client::BackupsClient, fleet_client::FleetClient, migrator_client::MigratorClient,
    rollouts_client::RolloutsClient, sets_client::SetsClient,
};

use tonic::{Streaming, service::interceptor::InterceptedService, transport::Channel};

pub use avocet_proto::v1 as pb;
pub use avocet_proto::{REPEATABLE_PREFIX, VersionField};
pub use credentials::{Bearer, Credentials, Timeouts};
pub use error::{ClientError, ERROR_DOMAIN, Rejection, code_name};
pub use record::{Control, RolloutRecord};
pub use sets::{CHUNK_BYTES, read_set_dir};

mod backups;
mod credentials;
mod error;
mod record;
mod sets;

/// Default daemon address, also the default of the command line's `--addr`.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7400";

/// Largest answer the client reads, in bytes (256 MiB). gRPC's default of 4 MiB is below
/// one large migration file: a plan carries the SQL of every script it runs
/// (`PlanResponse.scripts`), and the daemon reads files up to `[limits]
/// max_migration_bytes` (16 MiB by default) each.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The channel every generated client of [`Client`] shares, with its token.
type Transport = InterceptedService<Channel, Bearer>;

/// A connection to one `avocetd`. Cheap to clone (one shared HTTP/2 channel).
#[derive(Clone)]
pub struct Client {
    migrator: MigratorClient<Transport>,
    rollouts: RolloutsClient<Transport>,
    fleet: FleetClient<Transport>,
    backups: BackupsClient<Transport>,
    sets: SetsClient<Transport>,
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
        Self::connect_with(addr, Timeouts::default()).await
    }

    /// Connects to `addr` with `timeouts`; every call then fails with `DEADLINE_EXCEEDED`
    /// or `UNAVAILABLE` instead of waiting forever on a daemon that does not answer.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub async fn connect_with(
        addr: impl Into<String>,
        timeouts: Timeouts,
    ) -> Result<Self, ClientError> {
        Self::connect_as(addr, timeouts, &Credentials::default()).await
    }

    /// Connects to `addr` with `timeouts`, sending `credentials`' token on every call and
    /// speaking TLS when they ask for it (an `http://` address then becomes `https://`).
    ///
    /// # Errors
    /// As [`Client::connect`]; [`ClientError::Credentials`] for a token that cannot be
    /// sent or a file that cannot be read.
    pub async fn connect_as(
        addr: impl Into<String>,
        timeouts: Timeouts,
        credentials: &Credentials,
    ) -> Result<Self, ClientError> {
        let mut addr = addr.into();
        let tls = credentials.wants_tls(&addr);
        credentials.check_plaintext(&addr, tls)?;
        if tls && let Some(rest) = addr.strip_prefix("http://") {
            addr = format!("https://{rest}");
        }
        let mut bearer = match &credentials.token {
            Some(t) => Bearer::new(t)?,
            None => Bearer::default(),
        };
        if let Some(traceparent) = &credentials.traceparent {
            bearer = bearer.with_trace_context(traceparent, credentials.tracestate.as_deref())?;
        }
        let mut endpoint =
            Channel::from_shared(addr.clone()).map_err(|e| ClientError::Address {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
        if tls {
            endpoint = endpoint
                .tls_config(credentials.tls()?)
                .map_err(|e| ClientError::Credentials(e.to_string()))?;
        }
        let channel = endpoint
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .http2_keep_alive_interval(timeouts.keepalive)
            .keep_alive_timeout(timeouts.keepalive)
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        Ok(Self::from_channel_as(channel, bearer))
    }

    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self::from_channel_as(channel, Bearer::default())
    }

    /// Wraps an existing channel, sending `bearer`'s token on every call.
    pub fn from_channel_as(channel: Channel, bearer: Bearer) -> Self {
        let transport = InterceptedService::new(channel, bearer);
        Self {
            migrator: MigratorClient::new(transport.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            rollouts: RolloutsClient::new(transport.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            fleet: FleetClient::new(transport.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            backups: BackupsClient::new(transport.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            sets: SetsClient::new(transport).max_decoding_message_size(MAX_RESPONSE_BYTES),
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

    /// `Migrator.Plan` over every page: the tenants of all pages in order, and the scripts
    /// of all of them, once each.
    ///
    /// # Errors
    /// As [`Client::plan`].
    pub async fn plan_all(
        &mut self,
        mut req: pb::PlanRequest,
    ) -> Result<pb::PlanResponse, ClientError> {
        let mut all = self.plan(req.clone()).await?;
        while !all.next_page_token.is_empty() {
            req.page_token = std::mem::take(&mut all.next_page_token);
            let page = self.plan(req.clone()).await?;
            all.tenants.extend(page.tenants);
            // A script's findings come with the first page that runs it.
            for finding in page.findings {
                if !all.findings.contains(&finding) {
                    all.findings.push(finding);
                }
            }
            all.scripts.extend(page.scripts);
            all.next_page_token = page.next_page_token;
        }
        all.findings.sort_by_cached_key(|f| {
            (
                record::version_order(&f.version.text()),
                f.direction,
                f.line,
            )
        });
        Ok(all)
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

    /// `Migrator.Verify` over every page.
    ///
    /// # Errors
    /// As [`Client::plan`].
    pub async fn verify_all(
        &mut self,
        mut req: pb::VerifyRequest,
    ) -> Result<pb::VerifyResponse, ClientError> {
        let mut all = self.verify(req.clone()).await?;
        while !all.next_page_token.is_empty() {
            req.page_token = std::mem::take(&mut all.next_page_token);
            let page = self.verify(req.clone()).await?;
            all.tenants.extend(page.tenants);
            all.next_page_token = page.next_page_token;
        }
        Ok(all)
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

    /// `Migrator.History`: one tenant's history table, read now, with the versions still
    /// pending and which records no longer match their file.
    ///
    /// # Errors
    /// As [`Client::plan`]; `UNAVAILABLE` when the tenant cannot be read.
    pub async fn history(
        &mut self,
        fleet: &str,
        tenant: &str,
    ) -> Result<pb::HistoryResponse, ClientError> {
        let req = pb::HistoryRequest {
            fleet: fleet.to_owned(),
            tenant: tenant.to_owned(),
        };
        Ok(self.migrator.history(req).await?.into_inner())
    }

    /// `Migrator.Baseline`: records the versions up to `to_version` as applied, without
    /// running them, on the selected tenants that have no history; each tenant's result
    /// says how many, or why not.
    ///
    /// # Errors
    /// As [`Client::plan`]; `INVALID_ARGUMENT` when `to_version` is not in the set;
    /// `PERMISSION_DENIED` below `admin`.
    pub async fn baseline(
        &mut self,
        req: pb::BaselineRequest,
    ) -> Result<pb::BaselineResponse, ClientError> {
        Ok(self.migrator.baseline(req).await?.into_inner())
    }

    /// `Migrator.Repair`: resolves a `failed` or `running` record, accepts an edited
    /// file's checksum, or forgets a version whose file is gone.
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

    /// `Rollouts.Get`.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown rollout, `INVALID_ARGUMENT` for a malformed id.
    pub async fn rollout(&mut self, id: &str) -> Result<pb::Rollout, ClientError> {
        let req = pb::GetRolloutRequest { id: id.to_owned() };
        Ok(self.rollouts.get(req).await?.into_inner())
    }

    /// `Rollouts.List`: one page.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a bad state, page size or token.
    pub async fn list_rollouts(
        &mut self,
        req: pb::ListRolloutsRequest,
    ) -> Result<pb::ListRolloutsResponse, ClientError> {
        Ok(self.rollouts.list(req).await?.into_inner())
    }

    /// `Rollouts.Watch`: the rollout's events with `seq > after_seq`, stored then live.
    ///
    /// # Errors
    /// As [`Client::rollout`].
    pub async fn watch(&mut self, id: &str, after_seq: u64) -> Result<Events, ClientError> {
        let req = pb::WatchRequest {
            id: id.to_owned(),
            after_seq,
        };
        Ok(self.rollouts.watch(req).await?.into_inner())
    }

    /// `Rollouts.Cancel`, `Pause` or `Resume`.
    ///
    /// # Errors
    /// As [`Client::rollout`], plus `FAILED_PRECONDITION` when the rollout's state does not
    /// allow it (and, for a resume, when its migration set changed).
    pub async fn control(&mut self, id: &str, action: Control) -> Result<pb::Rollout, ClientError> {
        let req = pb::RolloutRef { id: id.to_owned() };
        let resp = match action {
            Control::Cancel => self.rollouts.cancel(req).await?,
            Control::Pause => self.rollouts.pause(req).await?,
            Control::Resume => self.rollouts.resume(req).await?,
        };
        Ok(resp.into_inner())
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

    /// One tenant of a fleet, whatever its source (`source` is `config` or `api`).
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown fleet or tenant.
    pub async fn get_tenant(
        &mut self,
        fleet: &str,
        tenant: &str,
    ) -> Result<pb::TenantInfo, ClientError> {
        let req = pb::GetTenantRequest {
            fleet: fleet.into(),
            tenant: tenant.into(),
        };
        Ok(self.fleet.get_tenant(req).await?.into_inner())
    }

    /// Registers a tenant, kept by the daemon across restarts.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` when the fleet has the id (from its configuration or the API);
    /// `INVALID_ARGUMENT` for a bad id, DSN, schema or label; `NOT_FOUND` for an unknown
    /// fleet.
    pub async fn register_tenant(
        &mut self,
        req: pb::RegisterTenantRequest,
    ) -> Result<pb::TenantInfo, ClientError> {
        Ok(self.fleet.register_tenant(req).await?.into_inner())
    }

    /// Runs the fleet's discovery query now; says what it added, removed, changed and left
    /// out.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` for a fleet without a discovery query; `UNAVAILABLE` when its
    /// catalog cannot be read; `NOT_FOUND` for an unknown fleet.
    pub async fn refresh_tenants(
        &mut self,
        fleet: &str,
    ) -> Result<pb::RefreshTenantsResponse, ClientError> {
        let req = pb::RefreshTenantsRequest {
            fleet: fleet.into(),
        };
        Ok(self.fleet.refresh_tenants(req).await?.into_inner())
    }

    /// `Fleet.Census`: every selected tenant's schema fingerprinted and the fleet grouped
    /// into its expected class and drift classes; `on_progress(done, total)` is called for
    /// each progress report. Returns the result (the stream's last message).
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown fleet or tenant; `INVALID_ARGUMENT` for a bad selector;
    /// `UNAVAILABLE` for an exported tenant that cannot be read; `INTERNAL` when the
    /// stream ends without a result.
    pub async fn census(
        &mut self,
        req: pb::CensusRequest,
        mut on_progress: impl FnMut(u32, u32),
    ) -> Result<pb::CensusResult, ClientError> {
        let mut stream = self.fleet.census(req).await?.into_inner();
        while let Some(event) = stream.message().await? {
            match event.event {
                Some(pb::census_event::Event::Progress(p)) => on_progress(p.done, p.total),
                Some(pb::census_event::Event::Result(r)) => return Ok(r),
                None => {}
            }
        }
        Err(tonic::Status::internal("the census stream ended without a result").into())
    }

    /// Removes a tenant registered through the API.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` for a tenant of the configuration file; `NOT_FOUND` for an
    /// unknown fleet or tenant.
    pub async fn deregister_tenant(
        &mut self,
        fleet: &str,
        tenant: &str,
    ) -> Result<(), ClientError> {
        let req = pb::DeregisterTenantRequest {
            fleet: fleet.into(),
            tenant: tenant.into(),
        };
        self.fleet.deregister_tenant(req).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Issue 25, finding 15: a token is not sent in clear beyond loopback without
    /// `insecure`.
    #[tokio::test]
    async fn a_token_is_not_sent_in_clear_to_another_host() {
        let with_token = super::Credentials {
            token: Some("t".into()),
            ..Default::default()
        };
        for addr in ["http://10.0.0.7:50051", "http://daemon.example:50051"] {
            let got =
                super::Client::connect_as(addr, super::Timeouts::default(), &with_token).await;
            assert!(
                matches!(got, Err(super::ClientError::Credentials(ref m)) if m.contains("--insecure")),
                "{addr}"
            );
        }
        let plain = ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"];
        for addr in plain {
            assert!(with_token.check_plaintext(addr, false).is_ok(), "{addr}");
        }
        let insecure = super::Credentials {
            insecure: true,
            ..with_token.clone()
        };
        assert!(insecure.check_plaintext("http://10.0.0.7:1", false).is_ok());
        assert!(
            with_token
                .check_plaintext("https://10.0.0.7:1", true)
                .is_ok()
        );
    }
}
