//! `[fleets.NAME]`: a fleet's dialect, set, tenants and how they are found
//! ([`DiscoveryConfig`]), its default strategy ([`StrategyConfig`]), and each configured
//! tenant ([`TenantConfig`]).

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::{BackupConfig, DsnError, PasswordSource, guard, secret, template};
use crate::model::{
    Amount, DialectKind, LintCode, LintSeverity, SetFormat, Strategy, TransactionMode,
};

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
