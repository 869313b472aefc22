//! avocetd: keeps the schemas of a fleet of tenant databases (PostgreSQL, MySQL/MariaDB,
//! SQLite) on the right migration, over gRPC.
//!
//! Request flow (DESIGN.md): [`api`] validates and maps requests ▸ [`fleet`] resolves
//! tenants ▸ [`plan`] decides the steps (pure) ▸ [`rollout`] runs them per tenant under a
//! lock through a [`dialect`] ▸ events stream back from the rollout's log. [`catalog`] loads
//! migration sets; [`telemetry`] holds logs, traces and metrics; [`server`] wires it up.

pub mod api;
pub mod catalog;
pub mod config;
pub mod dialect;
pub mod fleet;
pub mod plan;
pub mod rollout;
pub mod server;
pub mod telemetry;
pub mod wire;

pub use config::Config;
pub use server::{ServerError, serve};
