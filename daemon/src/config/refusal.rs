//! Why a DSN registered through the API is refused: the registration policy's rules
//! (`dsn.rs`) and `require_scram`'s probe (`scram.rs`); why the policy itself is unusable;
//! and why a tenant's DSN cannot be made (`template.rs`, `secret.rs`). No variant holds the
//! DSN or a password.

use std::{path::PathBuf, time::Duration};

use super::AuthRequest;

/// What a DSN that holds a password is told.
const PASSWORD: &str = "the DSN holds a password, which the control store would keep in clear; \
                        leave it out and set the fleet's password_env or password_file, which \
                        registered tenants use";

/// A registered DSN that breaks a rule of its fleet's registration policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// A SQLite fleet's DSN without the `sqlite:` scheme.
    #[error("invalid target: the DSN's scheme is not sqlite's (expected sqlite:)")]
    NotSqlite,
    /// A server DSN that is not a URL.
    #[error("the DSN does not parse: {0}")]
    Url(#[from] url::ParseError),
    /// A password in the DSN (user info or a parameter whose name holds `pass`).
    #[error("{PASSWORD}")]
    Password,
    /// A query parameter outside the dialect's allow-list.
    #[error(
        "parameter {key:?} may not be set by a registration (a {scheme} DSN may carry {allowed})"
    )]
    Parameter {
        /// The parameter's name, cut to a bounded length.
        key: String,
        /// The dialect's scheme.
        scheme: &'static str,
        /// The parameters allowed, comma-separated.
        allowed: String,
    },
    /// A DSN the driver would read differently, or not at all.
    #[error("the DSN does not parse as the driver reads it")]
    Driver,
    /// A server DSN through a socket, or without a host.
    #[error("a registered DSN names its server's host (no socket, no default)")]
    NoHost,
    /// A host outside the fleet's `allowed_hosts`.
    #[error(
        "host {host:?} is not in the fleet's allowed_hosts ({allowed}): the fleet's password \
         goes only to its own servers"
    )]
    HostNotAllowed {
        /// The host, cut to a bounded length.
        host: String,
        /// The allowed patterns, or what to set.
        allowed: String,
    },
    /// A SQLite fleet without `sqlite_root`.
    #[error("the fleet has no sqlite_root: registered SQLite files must be in it")]
    NoSqliteRoot,
    /// A SQLite DSN that names no file (`:memory:`, a NUL byte).
    #[error("a registered SQLite DSN names a file")]
    NotAFile,
    /// A SQLite file outside the fleet's `sqlite_root` (or the root itself).
    #[error("the file is not inside the fleet's sqlite_root {}", root.display())]
    OutsideRoot {
        /// The fleet's `sqlite_root`.
        root: PathBuf,
    },
    /// The control store's own file.
    #[error("the file is the control store's")]
    ControlStore,
    /// `require_scram`: the server asks for the password in cleartext or as MD5.
    #[error(
        "the server asks for the password as {} (not SCRAM), so the fleet's password would be \
         sent to it; require_scram is on for this fleet",
        match .0 {
            AuthRequest::Cleartext => "cleartext".to_owned(),
            AuthRequest::Md5 => "an MD5 digest".to_owned(),
            AuthRequest::Other(code) => format!("method {code}"),
            AuthRequest::Ok | AuthRequest::Sasl => "SCRAM".to_owned(),
        }
    )]
    NotScram(AuthRequest),
    /// `require_scram`: the server could not be asked.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// Why the server's authentication request could not be read (`require_scram`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The DSN does not parse as a PostgreSQL DSN.
    #[error("the DSN does not parse")]
    Dsn(#[source] sqlx::Error),
    /// No answer in time.
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("the server could not be asked how it authenticates: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered the start-up with an error (a TLS-only server does).
    #[error(
        "the server refused a plain start-up, so how it authenticates cannot be checked \
         (a TLS-only server: set the fleet's require_scram = false)"
    )]
    Refused,
}

/// A fleet's registration policy that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// An `allowed_hosts` entry that is not a glob.
    #[error("allowed_hosts {pattern:?}: {source}")]
    Pattern {
        /// The entry.
        pattern: String,
        /// Why.
        source: globset::Error,
    },
    /// The patterns together do not build.
    #[error("{0}")]
    Build(#[source] globset::Error),
    /// A `sqlite_root` that is not (and cannot be made) a directory.
    #[error("sqlite_root {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
}

/// Why a tenant's DSN cannot be made: its template, or the password put into it. Never the
/// DSN or the password itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsnError {
    /// Neither a DSN nor the fleet's `dsn_template`.
    #[error("no dsn, and the fleet has no dsn_template")]
    Missing,
    /// The template names a variable the tenant's `vars` do not set.
    #[error("the DSN template uses a variable the tenant's vars do not set: {0}")]
    TemplateVariable(#[source] strfmt::FmtError),
    /// An unmatched brace (the template's text stays out: it may hold a password).
    #[error(
        "the DSN template does not parse: a `{{` or `}}` is unmatched (write `{{{{` or `}}}}` \
         for a literal brace)"
    )]
    TemplateSyntax,
    /// Both `password_env` and `password_file`.
    #[error("set password_env or password_file, not both")]
    BothSources,
    /// `password_env` unset or not UTF-8.
    #[error("password_env {var}: {source}")]
    Env {
        /// The variable.
        var: String,
        /// Why.
        source: std::env::VarError,
    },
    /// `password_file` unreadable.
    #[error("password_file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A DSN that is not a URL.
    #[error("the DSN is not a URL a password can be set in: {0}")]
    NotAUrl(#[source] url::ParseError),
    /// A DSN without a user.
    #[error("the DSN names no user for its password: add user@ before the host")]
    NoUser,
    /// A DSN that holds no password (SQLite).
    #[error("this DSN cannot hold a password (SQLite has none)")]
    CannotHoldPassword,
}
