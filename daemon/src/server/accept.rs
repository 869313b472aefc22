//! Accepting connections on both listeners (issue 25, finding 18): a connection that sends
//! no byte (no TLS ClientHello, no HTTP/2 preface, no HTTP request) within
//! `[limits] first_byte_timeout` is closed before any server sees it, so idle sockets
//! cannot hold a descriptor each for ever. At most [`PENDING_CONNECTIONS`] wait at once;
//! more wait in the kernel's listen backlog.

use std::{net::SocketAddr, time::Duration};

use futures::{StreamExt as _, stream::BoxStream};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::TcpIncoming;

/// Connections waiting for their first byte at once, per listener.
const PENDING_CONNECTIONS: usize = 4096;

/// Pause after a failed `accept` (out of descriptors, say) before the next, so a failing
/// listener does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// `listener`'s connections with `TCP_NODELAY` (a small gRPC response otherwise waits on
/// Nagle's algorithm for the client's delayed ACK, about 40 ms on Linux) and TCP
/// keepalive, each only once it has sent a byte within `first_byte`; the others are
/// dropped (closed).
pub(super) fn incoming(
    listener: TcpListener,
    first_byte: Duration,
) -> BoxStream<'static, std::io::Result<TcpStream>> {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
        .map(move |accepted| async move {
            let stream = accepted?;
            let mut byte = [0_u8; 1];
            match tokio::time::timeout(first_byte, stream.peek(&mut byte)).await {
                Ok(Ok(n)) if n > 0 => Ok(Some(stream)),
                _ => Ok(None),
            }
        })
        .buffer_unordered(PENDING_CONNECTIONS)
        .filter_map(|r: std::io::Result<Option<TcpStream>>| async move { r.transpose() })
        .boxed()
}

/// The admin listener as axum takes it: [`incoming`]'s connections, those that spoke.
pub(crate) struct FirstByte {
    connections: BoxStream<'static, std::io::Result<TcpStream>>,
    local: std::io::Result<SocketAddr>,
}

impl FirstByte {
    /// `listener`, whose connections must send a byte within `first_byte`.
    pub(super) fn new(listener: TcpListener, first_byte: Duration) -> Self {
        let local = listener.local_addr();
        Self {
            connections: incoming(listener, first_byte),
            local,
        }
    }
}

impl axum::serve::Listener for FirstByte {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.connections.next().await {
                Some(Ok(stream)) => match stream.peer_addr() {
                    Ok(peer) => return (stream, peer),
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
                // The listener's stream never ends by itself; if it did, accept nothing more.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
