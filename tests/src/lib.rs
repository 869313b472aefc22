//! Harness for Avocet's end-to-end tests: real PostgreSQL, MariaDB and SQLite databases
//! created per test and dropped after it, `avocetd` in-process on `127.0.0.1:0`, and the
//! real client library.
//!
//! Servers are found at `TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`) and
//! `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`).

mod admin;
pub mod census;
pub mod clients;
mod daemon;
mod fixture;
pub mod invariants;
mod otlp;
mod process;
pub mod scenarios;

pub use admin::{Scrape, get, scrape};
pub use daemon::{FLEET, TestDaemon, only, request};
pub use fixture::{Fleet, MigrationCopy, sample_dir};
pub use otlp::OtlpReceiver;
pub use process::{ConfigFile, Daemon, free_port, start_detached, wait_for, write_config};

/// The `avocet.v1` wire types.
pub use avocet_client::{VersionField, pb};
