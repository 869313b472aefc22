//! Configuration: defaults < TOML file < `AVOCET_`-prefixed environment (figment), with `__`
//! separating nested keys (`AVOCET_FLEETS__DEMO__CONCURRENCY=4`). Unknown keys are errors
//! naming the key.
//!
//! | file | what |
//! | --- | --- |
//! | `backup.rs` | `[fleets.NAME.backup]`: when tenants are backed up, where, how many kept |
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
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::model::{
    Amount, DialectKind, LintCode, LintSeverity, SetFormat, Strategy, TransactionMode,
};

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

/// One fleet: tenants that share a dialect and a migration set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `postgres`, `mysql` (also `mariadb`) or `sqlite`.
    pub dialect: DialectKind,
    /// Directory of the migration set; relative paths resolve against the working directory.
    pub migrations: PathBuf,
    /// The set's on-disk layout: `auto` (the default: detected per directory), `sqlx`,
    /// `golang-migrate`, `diesel`, `dbmate`, `flyway` or `refinery`.
    #[serde(default)]
    pub format: SetFormat,
    /// Tenants migrated at once by default. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Longest wait for a tenant's lock, e.g. `"30s"`, `"500ms"`. Default 30 s.
    #[serde(default = "default_lock_timeout", with = "humantime_serde")]
    pub lock_timeout: Duration,
    /// Longest wait for a connection to open. Default 10 s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait of each migration statement for a lock (PostgreSQL `lock_timeout`,
    /// MySQL `lock_wait_timeout` in whole seconds, SQLite `busy_timeout`), after which the
    /// statement gives up, leaves the lock queue and is retried with backoff, so one long
    /// reader never queues a tenant's traffic behind an `ALTER`. `"0"` turns the guard off.
    /// A file's `-- avocet:ddl-lock-timeout` overrides it. Default 500 ms.
    #[serde(default = "guard::default_ddl_lock_timeout", with = "humantime_serde")]
    pub ddl_lock_timeout: Duration,
    /// How long a lock-timed-out migration keeps retrying (1 s, doubling to 30 s, jittered)
    /// before its tenant fails `lock_timeout`, naming the sessions in the way. Default 10 min.
    #[serde(default = "guard::default_ddl_retry_for", with = "humantime_serde")]
    pub ddl_retry_for: Duration,
    /// Longest run of each migration statement (PostgreSQL `statement_timeout`, MariaDB
    /// `max_statement_time`; SQLite has none), e.g. `"30min"`. A file's
    /// `-- avocet:statement-timeout` overrides it. Default: none.
    #[serde(
        default,
        with = "guard::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub statement_timeout: Option<Duration>,
    /// Lint severities by code (`[fleets.NAME.lint]`, e.g. `update_without_where = "error"`,
    /// `narrowing_type = "warning"`, `unparsed = "off"`), by name or identifier (`AV201`);
    /// docs/lint.md lists them. `error` refuses a migration unless its data loss is accepted.
    /// Codes not named keep their default: destructive ones `error`, the others `warning`.
    #[serde(default)]
    pub lint: BTreeMap<String, LintSeverity>,
    /// History table name in each tenant; default: the top-level `history_table`.
    #[serde(default)]
    pub history_table: Option<String>,
    /// Statements run on every connection the engine opens for this fleet, such as
    /// `PRAGMA foreign_keys = OFF` (SQLite cannot change it inside a transaction) or
    /// `SET FOREIGN_KEY_CHECKS = 0`.
    #[serde(default)]
    pub session_init: Vec<String>,
    /// Default strategy of the fleet's rollouts (`[fleets.NAME.strategy]`).
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// How a tenant's migrations are grouped: `"migration"` (one transaction each, the
    /// default) or `"tenant"` (all of a tenant's pending migrations in one transaction, all
    /// or nothing; PostgreSQL and SQLite, sets without non-transactional migrations).
    #[serde(default)]
    pub transaction: TransactionMode,
    /// DSN of every tenant that gives none, with `{id}` and the tenant's `vars` substituted,
    /// e.g. `"postgres://app@{host}:5432/tenant_{id}"`. Secret like a DSN.
    #[serde(default)]
    pub dsn_template: Option<String>,
    /// The password of every tenant's DSN that sets no `password_env`/`password_file` of
    /// its own: an environment variable holding it, e.g. `"TENANT_DB_PASSWORD"`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Or a file holding it, e.g. `"/run/secrets/tenant-db"` (one trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Servers a tenant registered through the API may be on: `host` or `host:port` glob
    /// patterns, e.g. `["db-*.internal", "10.0.3.7:5432"]`. Default: the hosts of the
    /// fleet's configured tenants' DSNs and of its `dsn_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// The directory that holds the files of SQLite tenants registered through the API
    /// (created if missing); none (the default): SQLite tenants cannot be registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite_root: Option<PathBuf>,
    /// A registered PostgreSQL tenant's server must authenticate with SCRAM: one that asks
    /// for the password in cleartext or as MD5 is refused before it is sent. Default true.
    #[serde(default = "default_true")]
    pub require_scram: bool,
    /// The tenants.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Tenants found by a query against a catalog database (`[fleets.NAME.discovery]`).
    #[serde(default)]
    pub discovery: Option<DiscoveryConfig>,
    /// Label its migration and lock-wait metrics with the tenant id (`tenant`), for small
    /// fleets: every tenant adds series. Default false: tenant ids are span attributes only.
    #[serde(default)]
    pub metrics_tenant_labels: bool,
    /// After a tenant's apply or rollback succeeds, read its schema on the same session and
    /// keep its fingerprint as the expected one for its version (the first tenant there
    /// sets it; a later tenant that differs is a `SchemaDrift` event): docs/census.md.
    /// Default true; it costs one catalog read per tenant that ran a migration.
    #[serde(default = "census_on_apply_default")]
    pub census_on_apply: bool,
    /// Values of `${name}` placeholders in this fleet's scripts (`[fleets.NAME.vars]`),
    /// beside the built-in `${tenant_id}`, `${schema}` and `${fleet}`. Names are
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Backups of its tenants before risky migrations (`[fleets.NAME.backup]`;
    /// docs/backups.md). Default: never.
    #[serde(default)]
    pub backup: BackupConfig,
}

/// `census_on_apply`'s default: on.
fn census_on_apply_default() -> bool {
    true
}

/// A fleet's discovery query: its rows (`id`, `dsn`, `labels` as a JSON object) are tenants
/// of the fleet, read at start, every `refresh`, and on `avocet tenants refresh`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// The catalog database (`postgres://…`, `mysql://…`, `sqlite://…`). Secret.
    pub dsn: String,
    /// A query whose columns `id`, `dsn` and `labels` name each tenant, e.g.
    /// `SELECT id, dsn, labels FROM tenants WHERE active`.
    pub query: String,
    /// How often the query runs again, e.g. `"5m"`. Default 5 minutes.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// Longest wait for the catalog's connection. Default 10 s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl fmt::Debug for DiscoveryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryConfig")
            .field("dsn", &"<redacted>")
            .field("query", &self.query)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}

impl FleetConfig {
    /// A fleet of `dialect` serving the set in `migrations`, every other key at its default
    /// and no tenant yet.
    pub fn new(dialect: DialectKind, migrations: PathBuf) -> Self {
        Self {
            dialect,
            migrations,
            format: SetFormat::default(),
            concurrency: default_concurrency(),
            lock_timeout: default_lock_timeout(),
            connect_timeout: default_connect_timeout(),
            ddl_lock_timeout: guard::default_ddl_lock_timeout(),
            ddl_retry_for: guard::default_ddl_retry_for(),
            statement_timeout: None,
            lint: BTreeMap::new(),
            history_table: None,
            session_init: Vec::new(),
            strategy: StrategyConfig::default(),
            transaction: TransactionMode::default(),
            dsn_template: None,
            password_env: None,
            password_file: None,
            allowed_hosts: None,
            sqlite_root: None,
            require_scram: true,
            tenants: Vec::new(),
            discovery: None,
            metrics_tenant_labels: false,
            census_on_apply: true,
            vars: BTreeMap::new(),
            backup: BackupConfig::default(),
        }
    }

    /// The fleet's `[lint]` as a policy; codes are checked when the configuration loads.
    pub(crate) fn lint_policy(&self) -> crate::model::LintPolicy {
        crate::model::LintPolicy(
            self.lint
                .iter()
                .filter_map(|(code, s)| Some((LintCode::parse(code)?, *s)))
                .collect(),
        )
    }

    /// The fleet's `password_env` / `password_file`, which registered and discovered
    /// tenants use too.
    pub(crate) fn password_source(&self) -> PasswordSource {
        PasswordSource {
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
        }
    }

    /// The DSN of `tenant`: its own, or the fleet's `dsn_template` rendered with its id and
    /// vars.
    ///
    /// # Errors
    /// [`DsnError`] when the tenant has no DSN and the fleet no template, the template
    /// uses a variable the tenant does not set, or the password cannot be put in.
    pub fn tenant_dsn(&self, tenant: &TenantConfig) -> Result<String, DsnError> {
        let dsn = match (&self.dsn_template, tenant.dsn.is_empty()) {
            (_, false) => tenant.dsn.clone(),
            (Some(template), true) => template::render(template, &tenant.id, &tenant.vars)?,
            (None, true) => return Err(DsnError::Missing),
        };
        let tenant_source = PasswordSource {
            password_env: tenant.password_env.clone(),
            password_file: tenant.password_file.clone(),
        };
        secret::with_password(dsn, &tenant_source, &self.password_source())
    }
}

/// A fleet's default rollout strategy; a request may override each field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// The first N tenants run alone and must all succeed before the rest start. Default 0.
    #[serde(default)]
    pub canary: u32,
    /// Tenants per wave after the canary: `"50"` or `"10%"`. Default: one wave.
    #[serde(default)]
    pub wave_size: Option<String>,
    /// Tenants at once on one database server. Default: no limit but the budget.
    #[serde(default)]
    pub per_host_concurrency: Option<u32>,
    /// Failed tenants tolerated: `"3"` or `"5%"`; past it no new tenant starts and the
    /// rollout fails. Default: no limit.
    #[serde(default)]
    pub max_failures: Option<String>,
    /// Wait between waves, e.g. `"30s"`. Default none.
    #[serde(default, with = "humantime_serde")]
    pub pause_between_waves: Option<Duration>,
}

impl StrategyConfig {
    /// The strategy these defaults make, with `concurrency` tenants at once.
    ///
    /// # Errors
    /// [`StrategyError`] naming the field (`wave_size`, `max_failures`) that is not a count
    /// or a percentage.
    pub fn resolve(&self, concurrency: usize) -> Result<Strategy, StrategyError> {
        let amount = |field: &'static str, v: &Option<String>| {
            v.as_deref()
                .map(|s| {
                    s.parse::<Amount>()
                        .map_err(|reason| StrategyError { field, reason })
                })
                .transpose()
        };
        Ok(Strategy {
            canary: self.canary,
            wave_size: amount("wave_size", &self.wave_size)?.filter(|a| a.of(100) > 0),
            concurrency: concurrency.min(u32::MAX as usize) as u32,
            per_host_concurrency: self.per_host_concurrency,
            max_failures: amount("max_failures", &self.max_failures)?,
            pause_between_waves_ms: self.pause_between_waves.map_or(0, |d| d.as_millis() as u64),
        })
    }
}

/// A strategy default that is not a count (`"50"`) or a percentage (`"10%"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct StrategyError {
    /// `wave_size` or `max_failures`.
    pub field: &'static str,
    /// Why, as [`Amount`]'s parser says it.
    pub reason: String,
}

fn default_true() -> bool {
    true
}

fn default_concurrency() -> usize {
    8
}

fn default_lock_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One tenant database (or schema).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Unique within the fleet: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`.
    pub id: String,
    /// Connection URL (`postgres://…`, `mysql://…`, `sqlite://path?mode=rwc`). Secret.
    /// Empty (or left out): rendered from the fleet's `dsn_template`.
    #[serde(default)]
    pub dsn: String,
    /// Variables of the fleet's `dsn_template`, e.g. `{ host = "db-3.internal" }`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Its DSN's password from an environment variable (overrides the fleet's).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Or from a file (overrides the fleet's).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PostgreSQL schema for schema-per-tenant fleets.
    #[serde(default)]
    pub schema: Option<String>,
    /// Labels matched by selectors, e.g. `{ region = "eu" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantConfig")
            .field("id", &self.id)
            .field("dsn", &"<redacted>")
            .field("schema", &self.schema)
            .field("labels", &self.labels)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .finish()
    }
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
