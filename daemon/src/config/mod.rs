//! Configuration: defaults < TOML file < `AVOCET_`-prefixed environment (figment), with `__`
//! separating nested keys (`AVOCET_FLEETS__DEMO__CONCURRENCY=4`). Unknown keys are errors
//! naming the key.
//!
//! | file | what |
//! | --- | --- |
//! | `backup.rs` | `[fleets.NAME.backup]`: when tenants are backed up, where, how many kept |
//! | `fleet.rs` | `[fleets.NAME]`: dialect, set, tenants, discovery, default strategy |
//! | `template.rs` | a fleet's `dsn_template`, rendered for each tenant |
//! | `builtin.rs` | the built-in default: `config/avocet.toml` and the SQLite sample set, in the binary |
//! | `secret.rs` | DSN passwords from an environment variable or a file |
//! | `dsn.rs` | where a registered tenant's DSN may point: hosts, files, parameters, other fleets |
//! | `scram.rs` | `require_scram`: the server's authentication request, read before registering |
//! | `refusal.rs` | why a registered DSN is refused ([`RegistrationError`], [`ProbeError`]), a registration policy unusable ([`PolicyError`]), a tenant's DSN not made ([`DsnError`]) |
//! | `security.rs` | `[auth]`, `[tls]` and `[limits]` |
//! | `subject.rs` | distinguished names as attribute sets: RFC 4514 text and certificates, compared exactly ([`SubjectError`]) |
//! | `observe.rs` | `admin_listen`: an address, or empty for none; `log_format` ([`LogFormat`]) |
//! | `role.rs` | the [`Role`]s a token or certificate subject grants |
//! | `guard.rs` | the lock guard's defaults: `ddl_lock_timeout`, `ddl_retry_for`, waiters per host |

mod backup;
mod builtin;
mod dsn;
mod fleet;
mod guard;
mod observe;
mod refusal;
mod role;
mod scram;
mod secret;
mod security;
pub(crate) mod subject;
mod template;

pub use backup::{BACKUP_PLACEHOLDERS, BackupConfig};
pub use dsn::{RegistrationPolicy, TargetKey};
pub use fleet::{DiscoveryConfig, FleetConfig, StrategyConfig, StrategyError, TenantConfig};
pub use observe::LogFormat;
pub use refusal::{DsnError, PolicyError, ProbeError, RegistrationError};
pub use role::{Role, UnknownRole};
pub use scram::{AuthRequest, probe as probe_auth, require_scram};
pub(crate) use secret::{PasswordSource, fill_password};
pub use security::{
    AuthConfig, ClientConfig, DEFAULT_MAX_MIGRATION_BYTES, DEFAULT_MAX_SET_BYTES,
    DEFAULT_MAX_SET_FILES, LimitsConfig, TlsConfig, TokenConfig, certificate_attributes,
    subject_attributes,
};
pub(crate) use security::{NOT_A_DIGEST, sha256_digest};
pub use subject::SubjectError;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::model::LintCode;

/// Default path of the configuration file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/avocet.toml";

/// Where the built-in default writes its sample set, relative to the working directory.
pub const SAMPLE_DIR: &str = builtin::SAMPLE_DIR;

/// Default control store: an embedded SQLite file under `data/`.
pub const DEFAULT_CONTROL_STORE: &str = "sqlite://data/avocet-control.db?mode=rwc";

/// Environment variables with the `AVOCET_` prefix that belong to other programs (the
/// client's `AVOCET_ADDR`) or to the command line, not to the configuration.
const FOREIGN_ENV: [&str; 7] = ["addr", "config", "output", "token", "ca", "cert", "key"];

/// The top-level keys of [`Config`], as serde names them.
fn top_level_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The daemon's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address. Default `127.0.0.1:7400`; `AVOCET_LISTEN` overrides it.
    pub listen: SocketAddr,
    /// The admin HTTP listener: Prometheus text at `/metrics`, `/livez`, `/readyz`.
    /// Default `127.0.0.1:9464`; `AVOCET_ADMIN_LISTEN` overrides it, and an empty string
    /// (`admin_listen = ""`) turns it off. It has no authentication: expose it to the
    /// scraper only.
    #[serde(with = "observe::optional_addr")]
    pub admin_listen: Option<SocketAddr>,
    /// Log records on stderr: `"pretty"` (human lines, the default) or `"json"` (one
    /// object per line). Both carry `trace_id` in the span path of a call or a rollout;
    /// `AVOCET_LOG_FORMAT` overrides it.
    pub log_format: LogFormat,

    /// Name of this daemon instance, stored as `applied_by` in history rows. Default:
    /// `avocetd@<host name>` (gethostname(2)).
    pub instance_id: String,
    /// Global budget of database connections the engine holds open at once, in use or idle
    /// in a pool, across every fleet. A tenant being migrated uses 1 on PostgreSQL (its
    /// lock and its migrations share a session) and 2 on MySQL and SQLite (the lock's
    /// session and the running migration's); a read uses 1. Default 64.
    pub max_connections: usize,
    /// Budget of connections on any one database server (`host:port`). Default 32.
    pub max_connections_per_host: usize,
    /// Tenants of one database server that may be retrying a lock-timed-out statement at
    /// once (DESIGN.md rule 7); others wait their turn in the daemon, outside the server's
    /// lock queue. Default 2.
    #[serde(default = "guard::default_max_lock_waiters_per_host")]
    pub max_lock_waiters_per_host: usize,
    /// A pooled session idle this long is closed, e.g. `"5m"`. Default 5 minutes.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Default history table name for fleets that do not set one. Default `avocet_migrations`.
    pub history_table: String,
    /// The daemon's own database (rollouts, their events, last-known tenant state):
    /// `sqlite://path?mode=rwc` (the default, `sqlite://data/avocet-control.db?mode=rwc`) or
    /// `postgres://…`. Secret like a DSN.
    pub control_store: String,
    /// After SIGTERM, how long tenants in flight may take to finish their migration before
    /// the daemon stops anyway, e.g. `"60s"`. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// With a PostgreSQL control store shared by several daemons: a tenant whose daemon
    /// has not renewed its lease for this long is taken over by another, e.g. `"30s"`.
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub lease_timeout: Duration,
    /// How long a finished rollout (succeeded, failed, cancelled), its events and its audit
    /// entries are kept in the control store, e.g. `"90days"`; older ones are deleted at
    /// start and every hour. Rollouts that have not finished are kept. At least 1 hour.
    /// Default 90 days (issue 25, finding 12).
    #[serde(default = "default_rollout_retention", with = "humantime_serde")]
    pub rollout_retention: Duration,
    /// How long a published set that no tag names stays in the control store, e.g.
    /// `"30days"`: older untagged sets that no rollout in the store pinned and no fleet of
    /// this daemon follows by digest are deleted at start and every hour (each in the log
    /// and the audit). At least 1 s. Default 30 days (issue 30).
    #[serde(default = "default_set_retention", with = "humantime_serde")]
    pub set_retention: Duration,
    /// Allow listening on a non-loopback address without `[auth]` and `[tls]` (a warning
    /// says so at start). Default false: such a configuration is refused.
    pub insecure: bool,
    /// `[auth]`: tokens and client certificates. Default: none, everyone is `admin`.
    pub auth: AuthConfig,
    /// `[tls]`: serve gRPC over TLS, optionally mutual. Default: plaintext.
    pub tls: Option<TlsConfig>,
    /// `[limits]`: message size, streams per connection, running rollouts, call timeout.
    pub limits: LimitsConfig,
    /// Fleets by name.
    pub fleets: BTreeMap<String, FleetConfig>,
}

impl Default for Config {
    fn default() -> Self {
        // The machine's host name (gethostname(2)); HOSTNAME is often not exported.
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let host = match host.is_empty() {
            true => std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            false => host,
        };
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            log_format: LogFormat::default(),
            instance_id: format!("avocetd@{host}"),
            max_connections: 64,
            max_connections_per_host: 32,
            max_lock_waiters_per_host: guard::default_max_lock_waiters_per_host(),
            idle_timeout: Duration::from_secs(300),
            history_table: "avocet_migrations".into(),
            control_store: DEFAULT_CONTROL_STORE.into(),
            shutdown_grace: Duration::from_secs(60),
            lease_timeout: Duration::from_secs(30),
            rollout_retention: default_rollout_retention(),
            set_retention: default_set_retention(),
            insecure: false,
            auth: AuthConfig::default(),
            tls: None,
            limits: LimitsConfig::default(),
            fleets: BTreeMap::new(),
        }
    }
}

/// [`Config::rollout_retention`]'s default: 90 days.
fn default_rollout_retention() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}

/// [`Config::set_retention`]'s default: 30 days (issue 30).
pub const DEFAULT_SET_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

fn default_set_retention() -> Duration {
    DEFAULT_SET_RETENTION
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file given does not exist.
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    /// A parse error, a wrong type or an unknown key: figment's message, which names the
    /// key, with every DSN password in it masked (a TOML error quotes the line).
    #[error("configuration: {0}")]
    Parse(String),
    /// A value that parses but is not allowed.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// Dotted path of the key, e.g. `fleets.demo.tenants[2].id`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Parses TOML `text` over the defaults, without the environment, and validates it as
    /// [`Config::load`] does (relative paths stay relative to the working directory).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for bad TOML, wrong types and unknown keys (passwords masked);
    /// [`ConfigError::Invalid`] for values that are not allowed.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Loads `path` (if given) over the defaults, then the `AVOCET_` environment, and
    /// validates names and numbers.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for a file that does not exist; [`ConfigError::Parse`] for
    /// bad TOML, wrong types and unknown keys; [`ConfigError::Invalid`] for bad identifiers,
    /// duplicate tenant ids, zero concurrency or timeouts.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::Missing(path.to_owned()));
            }
            figment = figment.merge(Toml::file(path));
        }
        Self::extract(figment)
    }

    /// The built-in default (the repository's `config/avocet.toml`, compiled in) under the
    /// `AVOCET_` environment, with its sample set written to `data/sample-migrations/sqlite`
    /// (files already there are kept) and `data/` and the tenants' database files created.
    ///
    /// # Errors
    /// As [`Config::load`]; [`ConfigError::Invalid`] naming `data` when the files cannot be
    /// written.
    pub fn builtin() -> Result<Self, ConfigError> {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(builtin::CONFIG));
        let mut config = Self::extract(figment)?;
        builtin::prepare(&mut config).map_err(|e| ConfigError::Invalid {
            key: "data".into(),
            message: format!("writing the built-in default's files: {e}"),
        })?;
        Ok(config)
    }

    /// `figment` under the `AVOCET_` environment, extracted and validated.
    fn extract(figment: Figment) -> Result<Self, ConfigError> {
        // Only variables naming a top-level key are configuration; any other `AVOCET_`
        // variable (the client's `AVOCET_ADDR`, another tool's) is warned about and ignored.
        let keys = top_level_keys();
        let env = Env::prefixed("AVOCET_")
            .filter(move |k| {
                let top = k.as_str().split("__").next().unwrap_or_default();
                let known = keys.iter().any(|key| top.eq_ignore_ascii_case(key));
                let foreign = FOREIGN_ENV
                    .iter()
                    .any(|f| k.as_str().eq_ignore_ascii_case(f));
                if !known && !foreign {
                    tracing::warn!(
                        variable = %format!("AVOCET_{}", k.as_str().to_ascii_uppercase()),
                        "ignoring an AVOCET_ variable that names no configuration key"
                    );
                }
                known
            })
            .split("__");
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        if self.max_connections < 2 {
            return Err(invalid("max_connections".into(), "must be at least 2"));
        }
        if self.max_connections_per_host < 2 {
            return Err(invalid(
                "max_connections_per_host".into(),
                "must be at least 2",
            ));
        }
        if self.max_lock_waiters_per_host == 0 {
            return Err(invalid(
                "max_lock_waiters_per_host".into(),
                "must be at least 1",
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(invalid("idle_timeout".into(), "must be greater than zero"));
        }
        if self.rollout_retention < Duration::from_secs(3600) {
            return Err(invalid(
                "rollout_retention".into(),
                "must be at least 1h (rollouts are looked at for deletion every hour)",
            ));
        }
        if self.set_retention < Duration::from_secs(1) {
            return Err(invalid("set_retention".into(), "must be at least 1s"));
        }
        check_identifier("history_table", &self.history_table)?;
        self.auth
            .check()
            .map_err(|(key, message)| ConfigError::Invalid {
                key: format!("auth.{key}"),
                message,
            })?;
        if self.limits.max_message_bytes < 1024 {
            return Err(invalid(
                "limits.max_message_bytes".into(),
                "must be at least 1024",
            ));
        }
        if self.limits.max_concurrent_streams == 0 || self.limits.max_running_rollouts == 0 {
            return Err(invalid(
                "limits".into(),
                "streams and rollouts must be at least 1",
            ));
        }
        if self.limits.request_timeout.is_zero() {
            return Err(invalid(
                "limits.request_timeout".into(),
                "must be greater than zero",
            ));
        }
        self.check_exposure(self.listen)?;
        for (name, fleet) in &self.fleets {
            let key = |k: &str| format!("fleets.{name}.{k}");
            check_id(&format!("fleets.{name}"), name)?;
            if fleet.concurrency == 0 {
                return Err(invalid(key("concurrency"), "must be at least 1"));
            }
            if fleet.lock_timeout.is_zero() {
                return Err(invalid(key("lock_timeout"), "must be greater than zero"));
            }
            if fleet.connect_timeout.is_zero() {
                return Err(invalid(key("connect_timeout"), "must be greater than zero"));
            }
            if let Some(code) = fleet.lint.keys().find(|c| LintCode::parse(c).is_none()) {
                return Err(invalid(
                    key(&format!("lint.{code}")),
                    "is not a lint code (docs/lint.md lists them, e.g. update_without_where or AV201)",
                ));
            }
            if let Some(d) = &fleet.discovery {
                if d.refresh < Duration::from_secs(1) {
                    return Err(invalid(key("discovery.refresh"), "must be at least 1s"));
                }
                if d.timeout.is_zero() {
                    return Err(invalid(
                        key("discovery.timeout"),
                        "must be greater than zero",
                    ));
                }
            }
            if let Err(e) = fleet.strategy.resolve(fleet.concurrency) {
                return Err(ConfigError::Invalid {
                    key: key("strategy"),
                    message: e.to_string(),
                });
            }
            if fleet.strategy.per_host_concurrency == Some(0) {
                return Err(invalid(
                    key("strategy.per_host_concurrency"),
                    "must be at least 1",
                ));
            }
            if let Err((k, message)) = fleet.backup.check() {
                return Err(ConfigError::Invalid {
                    key: key(&format!("backup.{k}")),
                    message,
                });
            }
            if let Some(table) = &fleet.history_table {
                check_identifier(&key("history_table"), table)?;
            }
            for name in fleet.vars.keys() {
                use crate::model::{BUILTIN_PLACEHOLDERS, is_placeholder_name};
                if !is_placeholder_name(name) || BUILTIN_PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(invalid(
                        key(&format!("vars.{name}")),
                        "must be [A-Za-z_][A-Za-z0-9_]* and not tenant_id, schema or fleet",
                    ));
                }
            }
            let mut seen = std::collections::HashSet::new();
            for (i, tenant) in fleet.tenants.iter().enumerate() {
                let tkey = key(&format!("tenants[{i}]"));
                check_id(&format!("{tkey}.id"), &tenant.id)?;
                if !seen.insert(&tenant.id) {
                    return Err(invalid(format!("{tkey}.id"), "duplicate tenant id"));
                }
                if let Some(schema) = &tenant.schema {
                    check_identifier(&format!("{tkey}.schema"), schema)?;
                }
                if let Err(e) = fleet.tenant_dsn(tenant) {
                    return Err(ConfigError::Invalid {
                        key: format!("{tkey}.dsn"),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Config {
    /// Whether the daemon may listen on `addr`: on a non-loopback address only with
    /// `[auth]` and `[tls]` both configured, or `insecure = true` (then a warning is logged).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `listen` when `addr` would expose an open daemon,
    /// or `auth.clients` when there are clients and no `[tls] client_ca`.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), ConfigError> {
        // A client certificate is only asked for with client_ca: identities that can never
        // match are a mistake, not a configuration (issue 25, finding 21).
        let client_ca = self.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if !self.auth.clients.is_empty() && !client_ca {
            return Err(ConfigError::Invalid {
                key: "auth.clients".into(),
                message: "client certificates are only asked for with [tls] client_ca: set \
                          it, or remove the clients"
                    .into(),
            });
        }
        let protected = self.auth.is_enabled() && self.tls.is_some();
        if addr.ip().is_loopback() || protected {
            return Ok(());
        }
        if self.insecure {
            tracing::warn!(
                %addr,
                "insecure = true: serving on a non-loopback address without both [auth] and \
                 [tls]; anyone who reaches this port can change every tenant's schema"
            );
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: "listen".into(),
            message: format!(
                "{addr} is not a loopback address, and the daemon would serve it without \
                 {}: configure [auth] tokens and [tls], or set insecure = true",
                match (self.auth.is_enabled(), self.tls.is_some()) {
                    (false, false) => "authentication or TLS",
                    (false, true) => "authentication",
                    _ => "TLS",
                }
            ),
        })
    }
}

/// figment's errors as one line each, naming the key as the file writes it (figment's own
/// text prefixes the profile, `default.`) and where it came from, every DSN password masked
/// (a TOML syntax error quotes its line).
fn describe(e: figment::Error) -> String {
    let lines: Vec<String> = e
        .into_iter()
        .map(|e| {
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (in {} {source})", m.name),
                    None => format!(" (in {})", m.name),
                })
                .unwrap_or_default();
            let line = match e.path.is_empty() {
                true => format!("{}{source}", e.kind),
                false => format!("{}: {}{source}", e.path.join("."), e.kind),
            };
            crate::model::redact_secrets(&hide_quoted_lines(&line))
        })
        .collect();
    lines.join("; ")
}

/// A TOML syntax error quotes the lines around it (`5 | dsn = "…"`): each quoted line's
/// text is replaced, its number kept, since a DSN's password may hold any character (`/`,
/// `"`, a space, a multi-line string) and no masking can find all of it (issue 25, finding
/// 14).
fn hide_quoted_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
            match trimmed[digits..].trim_start().strip_prefix('|') {
                Some(rest) if digits > 0 && !rest.trim().is_empty() => {
                    format!(
                        "{} | (line not shown: it may hold a secret)",
                        &trimmed[..digits]
                    )
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tenant and fleet ids: [`crate::model::check_id`].
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key`.
pub fn check_id(key: &str, id: &str) -> Result<(), ConfigError> {
    crate::model::check_id(id).map_err(|message| ConfigError::Invalid {
        key: key.to_owned(),
        message,
    })
}

/// SQL identifiers we create (tables, schemas): [`crate::model::check_identifier`].
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key`.
pub fn check_identifier(key: &str, ident: &str) -> Result<(), ConfigError> {
    crate::model::check_identifier(ident).map_err(|message| ConfigError::Invalid {
        key: key.to_owned(),
        message,
    })
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error.
mod tests;
