//! The server's TLS (rustls, through tonic) from `[tls]`.

use tonic::transport::{Certificate, Identity as TlsIdentity, ServerTlsConfig};

use crate::config::TlsConfig;

/// tonic's TLS configuration of `config`: the certificate and key, and with `client_ca`,
/// client certificates required and checked against it (mutual TLS).
///
/// # Errors
/// A sentence naming the file that cannot be read.
pub(crate) fn server_tls(config: &TlsConfig) -> Result<ServerTlsConfig, String> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("tls.{key}: {}: {e}", path.display()))
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
