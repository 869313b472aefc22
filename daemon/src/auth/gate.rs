//! The interceptor in front of every `avocet.v1` call: a bearer token (RFC 6750 section
//! 2.1) or, under mutual TLS, the client certificate's subject becomes the call's
//! [`Identity`], stored in the request's extensions for the handler.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Request;

use super::{
    AuthError, Identity,
    failures::{Failures, Refusal},
    slowdown::SlowdownLayer,
};
use crate::config::{
    AuthConfig, NOT_A_DIGEST, sha256_digest,
    subject::{self, Attributes},
};

/// Authenticates every call; cheap to clone (one shared table).
#[derive(Clone)]
pub(crate) struct Gate(Arc<Table>);

struct Table {
    /// False with no `[auth]`: every caller is [`Identity::anonymous`].
    enabled: bool,
    /// SHA-256 of each token, with its identity.
    tokens: Vec<([u8; 32], Identity)>,
    /// Refusals by peer, for the log, the metric, the slowdown and the lockout.
    failures: Arc<Failures>,
    /// Certificate subject as parsed attributes ([`subject::parse`]), with its identity.
    clients: Vec<(Attributes, Identity)>,
}

impl Gate {
    /// The gate of `config`, with each token's hash read now (from `sha256_file` too).
    ///
    /// # Errors
    /// `(key, message)` for the first bad entry, the key relative to `[auth]`
    /// (`tokens[1].sha256`): a duplicate or invalid name, neither or both of `sha256` and
    /// `sha256_file`, an unreadable file, a hash that is not 64 hex digits, an empty
    /// subject or a bad fleet pattern.
    pub(crate) fn new(config: &AuthConfig) -> Result<Self, (String, String)> {
        let mut names = std::collections::HashSet::new();
        let mut name = |key: String, n: &str| {
            crate::model::check_id(n).map_err(|e| (format!("{key}.name"), e))?;
            if !names.insert(n.to_owned()) {
                return Err((format!("{key}.name"), format!("{n:?} is named twice")));
            }
            Ok(())
        };
        let mut tokens = Vec::with_capacity(config.tokens.len());
        for (i, t) in config.tokens.iter().enumerate() {
            let key = format!("tokens[{i}]");
            name(key.clone(), &t.name)?;
            let hex_text = match (&t.sha256, &t.sha256_file) {
                (Some(h), None) => h.clone(),
                (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                    (
                        format!("{key}.sha256_file"),
                        format!("{}: {e}", path.display()),
                    )
                })?,
                _ => {
                    return Err((key, "set exactly one of sha256 and sha256_file".into()));
                }
            };
            let hash = sha256_digest(&hex_text)
                .ok_or_else(|| (format!("{key}.sha256"), NOT_A_DIGEST.to_owned()))?;
            let identity =
                Identity::new(&t.name, t.role, &t.fleets).map_err(|e| (key, e.to_string()))?;
            tokens.push((hash, identity));
        }
        let mut clients = Vec::with_capacity(config.clients.len());
        for (i, c) in config.clients.iter().enumerate() {
            let key = format!("clients[{i}]");
            name(key.clone(), &c.name)?;
            let subject = subject::parse(&c.subject).map_err(|e| {
                (
                    format!("{key}.subject"),
                    format!("must be RFC 4514 attributes, e.g. CN=ci: {e}"),
                )
            })?;
            let identity =
                Identity::new(&c.name, c.role, &c.fleets).map_err(|e| (key, e.to_string()))?;
            clients.push((subject, identity));
        }
        Ok(Self(Arc::new(Table {
            enabled: config.is_enabled(),
            failures: Default::default(),
            tokens,
            clients,
        })))
    }

    /// This gate, its callers slowed after repeated failures by at most `max_delay`
    /// ([`Failures::delay`]; zero: never slowed). Call before the gate is cloned.
    pub(crate) fn with_failure_delay(mut self, max_delay: std::time::Duration) -> Self {
        if let Some(table) = Arc::get_mut(&mut self.0)
            && let Some(failures) = Arc::get_mut(&mut table.failures)
        {
            failures.max_delay = max_delay;
        }
        self
    }

    /// Counts refusals in `counter` (`avocet.auth.failures`, labelled by reason).
    pub(crate) fn count_failures(&self, counter: opentelemetry::metrics::Counter<u64>) {
        self.0.failures.count_in(counter);
    }

    /// The layer that makes a call from a peer with repeated failures wait
    /// ([`Failures::delay`]) before it reaches this gate.
    pub(crate) fn slowdown(&self) -> SlowdownLayer {
        SlowdownLayer::new(self.0.failures.clone(), self.0.enabled)
    }

    /// The identity of a call.
    ///
    /// # Errors
    /// [`AuthError::UnknownToken`] for a token that matches none,
    /// [`AuthError::Malformed`] for an `authorization` value that is not a bearer token,
    /// [`AuthError::BadCertificate`] or [`AuthError::UnknownSubject`] for a certificate that
    /// does not parse or whose subject maps to no client, and (with `[auth]` set)
    /// [`AuthError::NoCredentials`] for a call that brings neither.
    fn identify<T>(&self, request: &Request<T>) -> Result<Identity, AuthError> {
        let table = &self.0;
        if !table.enabled {
            return Ok(Identity::anonymous());
        }
        if let Some(value) = request.metadata().get("authorization") {
            let token = value
                .to_str()
                .ok()
                .and_then(bearer)
                .ok_or(AuthError::Malformed)?;
            let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            // Every hash is compared, each in constant time: the time taken says nothing
            // about how close a wrong token came.
            let mut found = None;
            for (hash, identity) in &table.tokens {
                if bool::from(hash.ct_eq(&presented)) && found.is_none() {
                    found = Some(identity);
                }
            }
            return found.cloned().ok_or(AuthError::UnknownToken);
        }
        if let Some(certs) = request.peer_certs()
            && let Some(cert) = certs.first()
        {
            // The certificate's attributes as it encodes them, compared as a set with each
            // configured subject's: never rendered to text and split again.
            let presented =
                subject::of_certificate(cert.as_ref()).map_err(AuthError::BadCertificate)?;
            return table
                .clients
                .iter()
                .find(|(s, _)| *s == presented)
                .map(|(_, identity)| identity.clone())
                .ok_or(AuthError::UnknownSubject);
        }
        Err(AuthError::NoCredentials)
    }

    /// `request` with its caller's [`Identity`] in its extensions: the interceptor's work
    /// (the API wraps it as tonic's `Interceptor`, turning the error into its status).
    ///
    /// # Errors
    /// [`AuthError::LockedOut`] for a peer with too many recent refusals; otherwise as
    /// [`Gate::identify`], each refusal recorded against the peer.
    pub(crate) fn admit(&self, mut request: Request<()>) -> Result<Request<()>, AuthError> {
        let peer = request.remote_addr().map(|a| a.ip());
        let failures = &self.0.failures;
        if self.0.enabled && failures.locked(peer) {
            failures.count(Refusal::LockedOut);
            return Err(AuthError::LockedOut);
        }
        let identity = self.identify(&request).inspect_err(|e| {
            let why = match (
                request.metadata().contains_key("authorization"),
                request.peer_certs().is_some_and(|c| !c.is_empty()),
            ) {
                (true, _) => Refusal::Token,
                (false, true) => Refusal::Certificate,
                (false, false) => Refusal::Missing,
            };
            failures.record(peer, why, &e.to_string());
        })?;
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

/// The token of an `authorization` value `Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110 section 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Role, TokenConfig};

    fn token(name: &str, secret: &str, role: Role) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            sha256: Some(hex::encode(Sha256::digest(secret))),
            sha256_file: None,
            role,
            fleets: Vec::new(),
        }
    }

    fn call(gate: &Gate, authorization: Option<&str>) -> Result<Identity, AuthError> {
        let mut request = Request::new(());
        if let Some(a) = authorization {
            request
                .metadata_mut()
                .insert("authorization", a.parse().unwrap());
        }
        gate.identify(&request)
    }

    #[test]
    fn tokens_are_matched_by_hash_and_anything_else_is_unauthenticated() {
        let config = AuthConfig {
            tokens: vec![
                token("viewer", "v-secret", Role::Viewer),
                token("admin", "a-secret", Role::Admin),
            ],
            clients: Vec::new(),
        };
        let gate = Gate::new(&config).unwrap();
        assert_eq!(
            call(&gate, Some("Bearer a-secret")).unwrap().name(),
            "admin"
        );
        assert_eq!(
            call(&gate, Some("bearer v-secret")).unwrap().name(),
            "viewer"
        );
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("a-secret"),
            Some("Basic a-secret"),
        ] {
            let err = call(&gate, bad).unwrap_err();
            assert_eq!(
                err.refusal(),
                super::super::Refusal::Unauthenticated,
                "{bad:?}"
            );
        }
        let open = Gate::new(&AuthConfig::default()).unwrap();
        assert_eq!(call(&open, None).unwrap().name(), "anonymous");
    }

    #[test]
    fn bad_entries_name_their_key() {
        let mut twice = token("a", "x", Role::Viewer);
        let config = AuthConfig {
            tokens: vec![twice.clone(), twice.clone()],
            clients: Vec::new(),
        };
        let err = Gate::new(&config).err().unwrap();
        assert_eq!(err.0, "tokens[1].name");
        twice.sha256 = Some("abc".into());
        let config = AuthConfig {
            tokens: vec![twice],
            clients: Vec::new(),
        };
        assert_eq!(Gate::new(&config).err().unwrap().0, "tokens[0].sha256");
        let spoofable = AuthConfig {
            tokens: Vec::new(),
            clients: vec![crate::config::ClientConfig {
                name: "ci".into(),
                subject: "CN=ci,".into(),
                role: Role::Operator,
                fleets: Vec::new(),
            }],
        };
        assert_eq!(Gate::new(&spoofable).err().unwrap().0, "clients[0].subject");
    }
}
