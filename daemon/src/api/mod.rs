//! gRPC services of `avocet.v1`. Each handler converts its request on receipt
//! (`receive.rs`), calls one [`Engine`] method, and converts the answer once on the way out
//! (`send.rs` for answers, `events.rs` for events and rollouts). Every failure becomes a
//! `tonic::Status` in one place, [`ApiError`]'s `From`.

mod events;
mod fleet;
mod migrator;
mod receive;
mod rollouts;
mod send;

use std::sync::Arc;

use avocet_proto::v1 as pb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

pub(crate) use fleet::FleetService;
pub(crate) use migrator::MigratorService;
pub(crate) use rollouts::RolloutsService;

use crate::{
    auth::Identity,
    engine::{Caller, Engine, EngineError, ErrorKind},
    model::Rpc,
};

/// Events buffered per stream before the forwarder waits for the client; the rollout never
/// waits for a stream (the stream reads from the control store).
const STREAM_BUFFER: usize = 64;

/// A rollout's events on the wire.
pub(crate) type EventStream = ReceiverStream<Result<pb::RolloutEvent, Status>>;

/// A request that failed: a malformed field, or the engine's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A malformed or out-of-range field (→ `INVALID_ARGUMENT`).
    #[error("{0}")]
    InvalidArgument(String),
    /// What the engine refused (→ the code of its [`ErrorKind`]).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::Engine(e) => match e.kind() {
                ErrorKind::ResourceExhausted => Code::ResourceExhausted,
                ErrorKind::InvalidArgument => Code::InvalidArgument,
                ErrorKind::NotFound => Code::NotFound,
                ErrorKind::FailedPrecondition => Code::FailedPrecondition,
                ErrorKind::AlreadyExists => Code::AlreadyExists,
                ErrorKind::Unavailable => Code::Unavailable,
                ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
                ErrorKind::Aborted => Code::Aborted,
                ErrorKind::Internal => Code::Internal,
            },
        };
        Status::new(code, bounded(e.to_string()))
    }
}

/// Longest `grpc-message` the daemon sends: a message quoting a request (a 1 MB selector)
/// is cut here, so an answer never exceeds a client's metadata limit (issue 25, finding 17).
const MAX_MESSAGE_BYTES: usize = 1024;

/// `message` with each quoted input cut at 128 bytes ([`crate::model::bound_quotes`]),
/// then cut at [`MAX_MESSAGE_BYTES`] on a character boundary, saying so.
fn bounded(message: String) -> String {
    let mut message = match crate::model::bound_quotes(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(cut) => cut,
    };
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let total = message.len();
    message.truncate(end);
    message.push_str(&format!("… (cut: {total} bytes)"));
    message
}

/// The caller of `request` as the gate proved it, if its role allows `rpc`; the fleet is
/// checked once the request is read ([`Identity::may_on`]). The [`Caller`] names the
/// identity and its peer address (`deployer (peer 10.0.0.7:50122)`) for the audit.
///
/// # Errors
/// `UNAUTHENTICATED` when no identity was proved (the service runs without its gate);
/// `PERMISSION_DENIED` when the identity's role is below the one `rpc` needs.
fn admit<T>(request: &Request<T>, rpc: Rpc) -> Result<(Identity, Caller), Status> {
    let identity = request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no identity: the call did not pass the gate"))?;
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
pub(crate) fn services(engine: Arc<Engine>) -> (MigratorService, RolloutsService, FleetService) {
    (
        MigratorService(engine.clone()),
        RolloutsService(engine.clone()),
        FleetService(engine),
    )
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    /// Issue 25, finding 17: a 1 MB quoted input does not come back whole.
    #[test]
    fn messages_are_bounded() {
        let status = Status::from(ApiError::InvalidArgument(format!(
            "bad selector {:?}",
            "é".repeat(1 << 19)
        )));
        assert!(
            status.message().len() < MAX_MESSAGE_BYTES + 64,
            "{}",
            status.message().len()
        );
        assert!(status.message().ends_with("bytes)"));
        let short = Status::from(ApiError::InvalidArgument("short".into()));
        assert_eq!(short.message(), "short");
    }
}
