//! A tower layer in front of the gate (issue 25, finding 16): a call from a peer address
//! with repeated failed authentications waits ([`Failures::delay`]) before the gate looks
//! at it, so a token guesser's next try comes later and later. The wait holds no lock and
//! no connection slot beyond the call's own stream; the table it reads is bounded.

use std::{
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::failures::Failures;

/// Makes [`Slowdown`] services.
#[derive(Clone)]
pub(crate) struct SlowdownLayer {
    failures: Arc<Failures>,
    /// False without `[auth]`: nobody is refused, nobody waits.
    enabled: bool,
}

impl SlowdownLayer {
    pub(super) fn new(failures: Arc<Failures>, enabled: bool) -> Self {
        Self { failures, enabled }
    }
}

impl<S> tower::Layer<S> for SlowdownLayer {
    type Service = Slowdown<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Slowdown {
            inner,
            layer: self.clone(),
        }
    }
}

/// `inner`, reached after the caller's wait.
#[derive(Clone)]
pub(crate) struct Slowdown<S> {
    inner: S,
    layer: SlowdownLayer,
}

/// The peer address tonic recorded for the connection, plain or TLS.
fn peer<B>(request: &http::Request<B>) -> Option<IpAddr> {
    let ext = request.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
        .map(|a| a.ip())
}

impl<S, B> tower::Service<http::Request<B>> for Slowdown<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let delay = match self.layer.enabled {
            true => self.layer.failures.delay(peer(&request)),
            false => std::time::Duration::ZERO,
        };
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            inner.call(request).await
        })
    }
}
