//! `[auth]`, `[tls]` and `[limits]`: who may call the daemon, over what, and how much one
//! caller may ask of it.
//!
//! ```toml
//! [auth]
//! tokens = [
//!   { name = "dashboards", sha256 = "<hex of the token's SHA-256>", role = "viewer" },
//!   { name = "deployer", sha256_file = "/run/secrets/deployer.sha256", role = "operator", fleets = ["eu-*"] },
//! ]
//! clients = [{ name = "ci", subject = "CN=ci-deployer,O=Example", role = "operator" }]
//! [tls]
//! cert = "server.pem"
//! key = "server.key"
//! client_ca = "clients-ca.pem"   # set: mutual TLS is required
//! ```

use super::subject::SubjectError;
use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::Role;

/// `[auth]`: the identities callers prove with a bearer token or a client certificate.
/// With neither configured, every caller is `admin`, which the daemon allows only on a
/// loopback address (or with `insecure = true`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer tokens (`authorization: Bearer <token>`), stored as SHA-256 hashes.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Client-certificate subjects (with `[tls] client_ca`), each an identity.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

impl AuthConfig {
    /// True when some identity is configured, so callers must prove one.
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.clients.is_empty()
    }

    /// What can be checked without reading files: each token sets exactly one of `sha256`
    /// and `sha256_file`, an inline hash is 64 hex digits, a subject is not empty. (The
    /// server checks the rest when it starts: names, files, fleet patterns.)
    ///
    /// # Errors
    /// `(key, message)`, the key relative to `[auth]`, e.g. `tokens[1].sha256`.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        for (i, t) in self.tokens.iter().enumerate() {
            match (&t.sha256, &t.sha256_file) {
                (Some(h), None) if sha256_digest(h).is_none() => {
                    return Err((format!("tokens[{i}].sha256"), NOT_A_DIGEST.into()));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err((
                        format!("tokens[{i}]"),
                        "set exactly one of sha256 and sha256_file".into(),
                    ));
                }
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if let Err(e) = super::subject::parse(&c.subject) {
                return Err((
                    format!("clients[{i}].subject"),
                    format!("must be RFC 4514 attributes, e.g. CN=ci: {e}"),
                ));
            }
        }
        Ok(())
    }
}

/// One bearer token: its name (shown in audit entries and logs, never the token), the
/// SHA-256 of the token as 64 hex digits, inline or in a file, its role and fleets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The identity's name, e.g. `deployer`; unique among tokens and clients.
    pub name: String,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Or a file holding it, e.g. a mounted Kubernetes Secret.
    #[serde(default)]
    pub sha256_file: Option<PathBuf>,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// Glob patterns of the fleets it may touch, e.g. `["eu-*"]`; empty: every fleet.
    #[serde(default)]
    pub fleets: Vec<String>,
}

/// One client certificate's identity under mutual TLS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The identity's name; unique among tokens and clients.
    pub name: String,
    /// The certificate's whole subject as RFC 4514 attributes, e.g. `CN=ci,O=Example`
    /// (order and spaces after commas do not matter; every attribute must match, as a set
    /// of (type, value) pairs compared exactly; `\,` or `"…"` put a comma in a value).
    pub subject: String,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// Glob patterns of the fleets it may touch; empty: every fleet.
    #[serde(default)]
    pub fleets: Vec<String>,
}

/// The (type, value) attributes of RFC 4514 subject `text`, as a `clients` entry's
/// `subject` is read (types upper-cased, sorted); for the fuzz target.
///
/// # Errors
/// [`SubjectError`] when it does not parse.
pub fn subject_attributes(text: &str) -> Result<Vec<(String, String)>, SubjectError> {
    super::subject::parse(text)
}

/// The (type, value) attributes of DER certificate `der`'s subject, as they are compared
/// with `clients` entries; for the fuzz target.
///
/// # Errors
/// [`SubjectError`] when it does not parse or an attribute is not a string.
pub fn certificate_attributes(der: &[u8]) -> Result<Vec<(String, String)>, SubjectError> {
    super::subject::of_certificate(der)
}

/// What a token's hash that does not parse is told.
pub(crate) const NOT_A_DIGEST: &str = "must be a SHA-256 digest: 64 hex digits";

/// The 32 bytes of a hex SHA-256 digest: 64 hex digits, or `sha256sum` output as it is (the
/// digest, then the file name); `None` for anything else.
pub(crate) fn sha256_digest(text: &str) -> Option<[u8; 32]> {
    let digest = text.split_whitespace().next()?;
    hex::decode(digest).ok()?.try_into().ok()
}

/// `[tls]`: the daemon's certificate, and the CA its clients' certificates must chain to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates; when set, every client must present a certificate they signed
    /// (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[limits]`: what one request or connection may take of the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request message, bytes. Default 4 MiB.
    pub max_message_bytes: usize,
    /// HTTP/2 streams (calls) at once on one connection. Default 64.
    pub max_concurrent_streams: u32,
    /// Rollouts this daemon starts and runs at once; one more is `RESOURCE_EXHAUSTED`.
    /// Default 32.
    pub max_running_rollouts: usize,
    /// Longest time a call may take to answer (a stream's first answer; the stream then
    /// runs as long as its rollout), e.g. `"120s"`. Default 120 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Rollouts of one fleet this daemon runs at once; one more is `RESOURCE_EXHAUSTED`,
    /// so one fleet cannot take every slot of `max_running_rollouts`. Default 8.
    #[serde(default = "default_per_fleet")]
    pub max_running_rollouts_per_fleet: usize,
    /// Rollouts started by one identity (a token's or a client's name) this daemon runs at
    /// once; one more is `RESOURCE_EXHAUSTED`. Default 16.
    #[serde(default = "default_per_identity")]
    pub max_running_rollouts_per_identity: usize,
    /// Longest `pause_between_waves` a fleet or a request may set, e.g. `"1h"`. Default 1 h.
    #[serde(default = "default_max_pause", with = "humantime_serde")]
    pub max_pause_between_waves: Duration,
    /// Longest wait for a new gRPC connection's first byte (TLS ClientHello or HTTP/2
    /// preface) before it is closed, e.g. `"10s"`. Default 10 s.
    #[serde(default = "default_first_byte", with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Largest migration file a set may hold, bytes; a set with a larger one does not load
    /// (its error names the file). Default 16 MiB.
    #[serde(default = "default_max_migration_bytes")]
    pub max_migration_bytes: u64,
    /// Longest wait imposed on a call from a peer address with repeated failed
    /// authentications: after 5 refusals in a minute its calls wait 10 ms, doubled with each
    /// further refusal up to this, e.g. `"1s"`; `"0s"`: no wait. At 50 it is locked out for
    /// the rest of the minute anyway. Default 1 s (issue 25, finding 16).
    #[serde(default = "default_auth_failure_delay", with = "humantime_serde")]
    pub max_auth_failure_delay: Duration,
    /// Largest migration set `PublishSet` accepts, its files' total bytes; a larger one is
    /// refused (`RESOURCE_EXHAUSTED`, naming the file that crossed it) as it arrives.
    /// Default 64 MiB.
    #[serde(default = "default_max_set_bytes")]
    pub max_set_bytes: u64,
    /// Most files a published set may hold. Default 10,000.
    #[serde(default = "default_max_set_files")]
    pub max_set_files: usize,
}

/// `[limits] max_set_bytes` by default: 64 MiB.
pub const DEFAULT_MAX_SET_BYTES: u64 = 64 << 20;
/// `[limits] max_set_files` by default.
pub const DEFAULT_MAX_SET_FILES: usize = 10_000;

fn default_max_set_bytes() -> u64 {
    DEFAULT_MAX_SET_BYTES
}

fn default_max_set_files() -> usize {
    DEFAULT_MAX_SET_FILES
}

fn default_auth_failure_delay() -> Duration {
    Duration::from_secs(1)
}

pub use crate::model::DEFAULT_MAX_MIGRATION_BYTES;

fn default_first_byte() -> Duration {
    Duration::from_secs(10)
}

fn default_per_identity() -> usize {
    16
}

fn default_per_fleet() -> usize {
    8
}

fn default_max_pause() -> Duration {
    Duration::from_secs(3600)
}

fn default_max_migration_bytes() -> u64 {
    DEFAULT_MAX_MIGRATION_BYTES
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 << 20,
            max_concurrent_streams: 64,
            max_running_rollouts: 32,
            request_timeout: Duration::from_secs(120),
            max_running_rollouts_per_fleet: default_per_fleet(),
            max_running_rollouts_per_identity: default_per_identity(),
            max_pause_between_waves: default_max_pause(),
            first_byte_timeout: default_first_byte(),
            max_migration_bytes: DEFAULT_MAX_MIGRATION_BYTES,
            max_auth_failure_delay: default_auth_failure_delay(),
            max_set_bytes: DEFAULT_MAX_SET_BYTES,
            max_set_files: DEFAULT_MAX_SET_FILES,
        }
    }
}
