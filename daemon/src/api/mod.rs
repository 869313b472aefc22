//! gRPC services of `avocet.v1`. Each handler converts its request on receipt
//! (`receive.rs`), calls one [`Engine`] method, and converts the answer once on the way out
//! (`send.rs` for answers, `events.rs` for events and rollouts). Every failure becomes a
//! `tonic::Status` in one place, [`ApiError`]'s `From` (`error.rs`), with its reason code
//! as `google.rpc.ErrorInfo`; the gate's refusals too ([`Gated`]). `PublishSet`'s stream
//! (file chunks or one tar archive) becomes a set's files in `publish.rs`.

mod backups;
mod error;
mod events;
mod fleet;
mod invalid;
mod migrator;
mod publish;
mod receive;
mod rollouts;
mod send;
mod sets;

use std::sync::Arc;

use avocet_proto::v1 as pb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub(crate) use backups::BackupsService;
pub(crate) use error::ApiError;
pub(crate) use error::Gated;
pub(crate) use fleet::FleetService;
pub(crate) use migrator::MigratorService;
pub(crate) use rollouts::RolloutsService;
pub(crate) use sets::SetsService;

use crate::{
    auth::{AuthError, Identity, Rpc},
    engine::{Caller, Engine},
};

/// Events buffered per stream before the forwarder waits for the client; the rollout never
/// waits for a stream (the stream reads from the control store).
const STREAM_BUFFER: usize = 64;

/// A rollout's events on the wire.
pub(crate) type EventStream = ReceiverStream<Result<pb::RolloutEvent, Status>>;

/// The caller of `request` as the gate proved it, if its role allows `rpc`; the fleet is
/// checked once the request is read ([`Identity::may_on`]). The [`Caller`] names the
/// identity and its peer address (`deployer (peer 10.0.0.7:50122)`) for the audit.
///
/// # Errors
/// [`AuthError::NoIdentity`] when no identity was proved (the service runs without its
/// gate); [`AuthError::RoleTooLow`] when the identity's role is below the one `rpc` needs.
fn admit<T>(request: &Request<T>, rpc: Rpc) -> Result<(Identity, Caller), AuthError> {
    let identity = request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or(AuthError::NoIdentity)?;
    identity.may(rpc)?;
    let peer = request
        .remote_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let caller = Caller {
        who: format!("{} (peer {peer})", identity.name()),
        method: rpc.path(),
    };
    Ok((identity, caller))
}

/// Rollout `id`'s events after `after`, forwarded to a bounded channel until the client
/// goes away or the rollout ends; the rollout goes on either way.
async fn events_of(
    engine: &Arc<Engine>,
    id: &str,
    after: u64,
) -> Result<Response<EventStream>, ApiError> {
    let events = engine.watch(id, after).await?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let item = event
                .map(|e| pb::RolloutEvent::from(&e))
                .map_err(|e| Status::from(ApiError::from(e)));
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

/// The services over one engine.
pub(crate) fn services(
    engine: Arc<Engine>,
) -> (
    MigratorService,
    RolloutsService,
    FleetService,
    BackupsService,
    SetsService,
) {
    (
        MigratorService(engine.clone()),
        RolloutsService(engine.clone()),
        FleetService(engine.clone()),
        BackupsService(engine.clone()),
        SetsService(engine),
    )
}
