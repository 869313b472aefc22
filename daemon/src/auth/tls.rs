//! The server's TLS (rustls, through tonic) from `[tls]`.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity as TlsIdentity, ServerTlsConfig};

use crate::config::TlsConfig;

/// Why `[tls]` cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file `[tls]` names cannot be read.
    #[error("tls.{key}: {}: {source}", .path.display())]
    Read {
        /// The key naming it: `cert`, `key` or `client_ca`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The transport refused the certificate, key or CA.
    #[error("tls: {0}")]
    Setup(#[source] tonic::transport::Error),
}

/// tonic's TLS configuration of `config`: the certificate and key, and with `client_ca`,
/// client certificates required and checked against it (mutual TLS).
///
/// # Errors
/// [`TlsError::Read`] naming the file that cannot be read.
pub(crate) fn server_tls(config: &TlsConfig) -> Result<ServerTlsConfig, TlsError> {
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            key,
            path: path.to_owned(),
            source,
        })
    };
    let identity = TlsIdentity::from_pem(read("cert", &config.cert)?, read("key", &config.key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.client_ca {
        tls = tls
            .client_ca_root(Certificate::from_pem(read("client_ca", ca)?))
            .client_auth_optional(false);
    }
    Ok(tls)
}
