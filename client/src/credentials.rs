//! How the client reaches the daemon: its timeouts, its credentials (a bearer token, TLS)
//! and the interceptor that puts the token and the caller's trace context on every call.

use std::{path::PathBuf, time::Duration};

use tonic::{
    metadata::AsciiMetadataValue,
    service::Interceptor,
    transport::{Certificate, ClientTlsConfig, Identity},
};

use crate::ClientError;

/// How long the client waits for the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the connection. Default 10 s.
    pub connect: Duration,
    /// A unary call, or the first answer of a streaming one (a stream then runs as long as
    /// its rollout). Default 30 s.
    pub request: Duration,
    /// HTTP/2 keepalive: a ping this often, and a connection whose ping is not answered
    /// within the same time is closed, so a dead daemon is noticed within twice this even
    /// in the middle of a stream. Default 10 s.
    pub keepalive: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            keepalive: Duration::from_secs(10),
        }
    }
}

/// How the client proves who it is and checks the daemon (a bearer token, TLS), and the
/// caller's trace context it sends along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Sent as `authorization: Bearer <token>` on every call (`--token`, `AVOCET_TOKEN`).
    pub token: Option<String>,
    /// PEM CA certificate(s) the daemon's certificate must chain to (`--ca`); unset: the
    /// Mozilla roots (webpki-roots). Setting it, a client certificate or an `https://`
    /// address turns TLS on.
    pub ca: Option<PathBuf>,
    /// PEM client certificate and its key for mutual TLS (`--cert`, `--key`).
    pub cert: Option<(PathBuf, PathBuf)>,
    /// A W3C `traceparent` sent on every call (the command line's `TRACEPARENT`), e.g.
    /// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`: the daemon's spans of the
    /// call, and of the rollout it starts, join that trace.
    pub traceparent: Option<String>,
    /// Its W3C `tracestate` (`TRACESTATE`), sent with it.
    pub tracestate: Option<String>,
    /// Send the token over plaintext to a non-loopback address anyway (`--insecure`);
    /// without it, that connection is refused before anything is sent.
    pub insecure: bool,
}

impl Credentials {
    /// Refuses to send a token in clear to an address other than loopback (a mistyped
    /// `http://` to a TLS daemon included), unless [`Credentials::insecure`].
    pub(crate) fn check_plaintext(&self, addr: &str, tls: bool) -> Result<(), ClientError> {
        if tls || self.token.is_none() || self.insecure {
            return Ok(());
        }
        let host = addr
            .parse::<tonic::transport::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match loopback {
            true => Ok(()),
            false => Err(ClientError::Credentials(format!(
                "refusing to send the token in clear to {host:?}: use an https:// address \
                 (or --ca), or pass --insecure"
            ))),
        }
    }

    pub(crate) fn wants_tls(&self, addr: &str) -> bool {
        self.ca.is_some() || self.cert.is_some() || addr.starts_with("https://")
    }

    /// tonic's TLS configuration of these credentials.
    pub(crate) fn tls(&self) -> Result<ClientTlsConfig, ClientError> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| ClientError::Credentials(format!("{what} {}: {e}", path.display())))
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read("--ca", ca)?)),
            None => tls.with_webpki_roots(),
        };
        if let Some((cert, key)) = &self.cert {
            tls = tls.identity(Identity::from_pem(
                read("--cert", cert)?,
                read("--key", key)?,
            ));
        }
        Ok(tls)
    }
}

/// Adds the bearer token and the caller's W3C trace context, if any, to every call.
#[derive(Clone, Debug, Default)]
pub struct Bearer {
    token: Option<AsciiMetadataValue>,
    traceparent: Option<AsciiMetadataValue>,
    tracestate: Option<AsciiMetadataValue>,
}

impl Bearer {
    /// `authorization: Bearer <token>` on every call.
    ///
    /// # Errors
    /// [`ClientError::Credentials`] for a token that cannot be a header value (control
    /// characters, non-ASCII).
    pub fn new(token: &str) -> Result<Self, ClientError> {
        format!("Bearer {}", token.trim())
            .parse()
            .map(|v| Self {
                token: Some(v),
                ..Self::default()
            })
            .map_err(|_| {
                ClientError::Credentials("the token holds characters a header cannot".into())
            })
    }

    /// The same, also sending `traceparent` (and `tracestate`) on every call.
    ///
    /// # Errors
    /// [`ClientError::Credentials`] for a value that cannot be a header value.
    pub fn with_trace_context(
        mut self,
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> Result<Self, ClientError> {
        let header = |name: &str, value: &str| {
            value.trim().parse().map_err(|_| {
                ClientError::Credentials(format!("{name} holds characters a header cannot"))
            })
        };
        self.traceparent = Some(header("traceparent", traceparent)?);
        self.tracestate = tracestate.map(|v| header("tracestate", v)).transpose()?;
        Ok(self)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        if let Some(value) = &self.token {
            metadata.insert("authorization", value.clone());
        }
        if let Some(value) = &self.traceparent {
            metadata.insert("traceparent", value.clone());
        }
        if let Some(value) = &self.tracestate {
            metadata.insert("tracestate", value.clone());
        }
        Ok(request)
    }
}
