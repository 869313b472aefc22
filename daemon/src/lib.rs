//! avocetd: keeps the schemas of a fleet of tenant databases (PostgreSQL, MySQL/MariaDB,
//! SQLite) on the right migration, over gRPC.
//!
//! A request flows (docs/architecture.md has the whole picture):
//!
//! | step | module | owns |
//! | --- | --- | --- |
//! | 1 | `api` | `avocet.v1` services: convert on receipt, call the engine, convert out |
//! | 2 | `engine` | the facade: plan, apply, rollback, verify, status, repair |
//! | 3 | `fleet` | fleets, tenants, selectors, the connection budget |
//! | 4 | `catalog` | loading a migration set: files, checksums, statements |
//! | 5 | `plan` | pure planning: set × history → steps and diagnostics |
//! | 6 | `rollout` | the job runner: waves, claims, leases, events; no SQL of its own |
//! | 7 | `migrate` | the tenant engine: lock, plan under it, run, record (DESIGN.md rules 1-5) |
//! | 8 | `dialect` | each database as data behind one session: locks, batches, the history table |
//!
//! Beside them: `backup` (tenants backed up with their databases' own tools, and restored),
//! `auth` (who may call what), `admin` (the HTTP listener for `/metrics`,
//! `/livez`, `/readyz`),
//! `model` (the domain's types, a leaf every layer shares), `config`
//! (figment), `telemetry` (logs, traces, metrics) and `server` (wiring and shutdown).

mod admin;
mod api;
mod auth;
mod backup;
mod catalog;
pub mod config;
mod dialect;
pub mod engine;
mod fleet;
mod migrate;
pub mod model;
mod plan;
mod rollout;
mod server;
mod store;
mod telemetry;

pub use auth::{Rpc, TlsError};
pub use backup::{BackupError, RestoreError};
pub use catalog::{CatalogError, ScriptError, parse_script};
pub use config::{Config, ConfigError, FleetConfig, StrategyConfig, TenantConfig};
pub use dialect::{DbError, Target, TenantLock};
pub use engine::{Engine, EngineError};
pub use fleet::{DiscoveryError, FleetError, Registry, SelectorError, TenantSource};
pub use migrate::RepairError;
pub use model::DialectKind;
pub use rollout::RunnerError;
pub use server::{ServerError, serve, serve_with_admin};
pub use store::StoreError;
pub use telemetry::{
    TelemetryError, TelemetryGuard, init as init_telemetry, init_as as init_telemetry_as,
    init_otlp as init_telemetry_otlp, init_with as init_telemetry_with,
};
