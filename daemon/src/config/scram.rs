//! `require_scram` (issue 25, finding 2): before a registered PostgreSQL tenant is
//! accepted, its server is asked how it authenticates the DSN's user, and one that wants
//! the password in cleartext (`password`) or as an MD5 digest (`md5`) is refused, so the
//! fleet's password is never offered to it. sqlx 0.8 has no `channel_binding` or
//! "refuse cleartext" option (its `establish` answers whatever the server asks), so the
//! daemon reads the server's first authentication request itself: a StartupMessage over
//! plain TCP (PostgreSQL docs, 55.2.1 "Start-up"), then the `R` message's code (0 trust,
//! 3 cleartext, 5 MD5, 10 SASL). The probe carries no password.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::refusal::{ProbeError, RegistrationError};

/// How long the probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server at `dsn` (PostgreSQL) asks the DSN's user for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequest {
    /// Nothing (`trust`).
    Ok,
    /// The password in cleartext.
    Cleartext,
    /// An MD5 digest of it.
    Md5,
    /// SASL (SCRAM-SHA-256).
    Sasl,
    /// Another method, by code.
    Other(i32),
}

/// Refuses `dsn` when its server asks for the password in cleartext or as MD5.
///
/// # Errors
/// [`RegistrationError::NotScram`] when it does; [`RegistrationError::Probe`] when the
/// server cannot be asked. Neither holds the DSN.
pub async fn require_scram(dsn: &str) -> Result<(), RegistrationError> {
    match probe(dsn).await? {
        AuthRequest::Ok | AuthRequest::Sasl => Ok(()),
        other => Err(RegistrationError::NotScram(other)),
    }
}

/// The first authentication request the server at `dsn` makes of its user.
///
/// # Errors
/// [`ProbeError`] when the DSN does not parse, the server cannot be reached in time, or it
/// answers with an error (a server that only accepts TLS does: set `require_scram =
/// false` for such a fleet).
pub async fn probe(dsn: &str) -> Result<AuthRequest, ProbeError> {
    let o: sqlx::postgres::PgConnectOptions = dsn.parse().map_err(ProbeError::Dsn)?;
    let user = o.get_username().to_owned();
    let database = o.get_database().unwrap_or(&user).to_owned();
    let address = format!("{}:{}", o.get_host(), o.get_port());
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let mut body = Vec::new();
        body.extend_from_slice(&196_608_i32.to_be_bytes());
        for (k, v) in [("user", &user), ("database", &database)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        message.extend_from_slice(&body);
        stream.write_all(&message).await?;
        let kind = stream.read_u8().await?;
        let _len = stream.read_i32().await?;
        let code = match kind {
            b'R' => Some(stream.read_i32().await?),
            _ => None,
        };
        // Terminate: the probe never authenticates.
        let _ = stream.write_all(&[b'X', 0, 0, 0, 4]).await;
        Ok::<_, std::io::Error>(code)
    };
    let code = tokio::time::timeout(PROBE_TIMEOUT, ask)
        .await
        .map_err(|_| ProbeError::Timeout(PROBE_TIMEOUT))??
        .ok_or(ProbeError::Refused)?;
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => AuthRequest::Md5,
        10 => AuthRequest::Sasl,
        c => AuthRequest::Other(c),
    })
}
