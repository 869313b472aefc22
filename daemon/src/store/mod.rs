//! The control store: the daemon's own database. Embedded SQLite by default
//! (`control_store = "sqlite://data/avocet-control.db?mode=rwc"`), PostgreSQL by
//! configuration (`control_store = "postgres://…"`), through sqlx's `Any` driver so one set
//! of SQL serves both (TEXT and BIGINT columns, `$n` parameters in order of appearance).
//!
//! | file | what |
//! | --- | --- |
//! | `migrations/` | the store's own schema, versioned, applied by sqlx's migrator at start |
//! | `backups.rs` | backups of tenants: recorded, listed, deleted; a rollout holding a tenant |
//! | `rollouts.rs` | rollouts, their tenants' work items, audit entries |
//! | `events.rs` | rollout events and the batched writes that keep counters with them |
//! | `known.rs` | each tenant's last-known state, for `Status` |
//! | `tenants.rs` | tenants registered through the API |
//! | `leases.rs` | replicas sharing rollouts: fenced claims of work items, heartbeats, one finisher, on the store's clock |
//! | `states.rs` | a rollout's state changes: compare-and-set along `model`'s table, with their event |
//! | `census.rs` | expected schemas recorded at apply time, and each tenant's last census |
//! | `counts.rs` | counts for a metrics scrape: rollouts and their tenants by state, a ping |
//! | `sets.rs` | migration sets published through the API: their files, digests and tags |
//! | `retention.rs` | finished rollouts and audit entries past `rollout_retention`, untagged unused sets past `set_retention`, deleted |

mod backups;
mod census;
mod counts;
mod events;
mod known;
mod leases;
mod retention;
mod rollouts;
mod sets;
mod states;
mod tenants;
#[cfg(test)]
mod tests;

use std::{borrow::Cow, time::Duration};

use futures::future::BoxFuture;
use sqlx::{
    AnyPool,
    any::AnyPoolOptions,
    migrate::{Migration, MigrationSource, MigrationType, Migrator},
};

pub(crate) use backups::BackupFilter;
pub(crate) use census::{CensusRow, ExpectedSchema};
pub(crate) use events::Write;
pub(crate) use known::KnownState;
pub(crate) use leases::{Claim, Lease, WaveCounts};
pub(crate) use rollouts::{NewRollout, RolloutFilter};
pub(crate) use sets::{Deletion, NewSet, StoredFile, StoredSet, TagMove};
pub(crate) use states::Changed;
pub(crate) use tenants::RegisteredTenant;

/// Why the control store failed. Messages never contain its URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened or reached.
    #[error("control store: cannot connect: {0}")]
    Connect(#[source] sqlx::Error),
    /// Its schema could not be brought up to date.
    #[error("control store: migrating its schema: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("control store: {context}: {source}")]
    Query {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A stored value did not decode (a newer daemon's data, or a damaged row).
    #[error("control store: {context}: {message}")]
    Corrupt {
        /// What was read.
        context: &'static str,
        /// Why it did not decode.
        message: String,
    },
}

impl StoreError {
    fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { context, source }
    }

    fn corrupt(context: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |e| Self::Corrupt {
            context,
            message: e.to_string(),
        }
    }
}

/// The store's schema, embedded in the binary.
const SCHEMA: [(i64, &str, &str); 11] = [
    (
        1,
        "control store",
        include_str!("migrations/0001_control_store.sql"),
    ),
    (
        2,
        "registered tenants",
        include_str!("migrations/0002_registered_tenants.sql"),
    ),
    (3, "replicas", include_str!("migrations/0003_replicas.sql")),
    (
        4,
        "text versions",
        include_str!("migrations/0004_text_versions.sql"),
    ),
    (
        5,
        "fenced leases",
        include_str!("migrations/0005_fenced_leases.sql"),
    ),
    (
        6,
        "known applied, dry runs",
        include_str!("migrations/0006_known_applied_dry_runs.sql"),
    ),
    (
        7,
        "registry generation",
        include_str!("migrations/0007_registry_generation.sql"),
    ),
    (
        8,
        "retention",
        include_str!("migrations/0008_retention.sql"),
    ),
    (9, "backups", include_str!("migrations/0009_backups.sql")),
    (
        10,
        "schema census",
        include_str!("migrations/0010_schema_census.sql"),
    ),
    (
        11,
        "published sets",
        include_str!("migrations/0011_published_sets.sql"),
    ),
];

/// [`SCHEMA`] as a source for sqlx's migrator.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(SCHEMA
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The daemon's control store.
pub(crate) struct Store {
    pool: AnyPool,
    /// PostgreSQL, where claims skip rows another replica holds (`FOR UPDATE SKIP LOCKED`);
    /// SQLite has one writer at a time and no such clause.
    postgres: bool,
    /// SQLite only: the turn of this daemon's frequent writers ([`Store::write_turn`]).
    writes: Option<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Connects to `url` (creating a SQLite file and its directory if missing) and brings
    /// the schema up to date.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the store cannot be reached or created;
    /// [`StoreError::Migrate`] when its schema is newer than this daemon or fails to apply.
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            make_sqlite_dir(url);
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            // A file does not drop a connection: no ping before each of the event
            // writer's batches (a round trip through SQLite's worker thread each). sqlx
            // still tests a connection as it goes back to the pool.
            .test_before_acquire(!sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // Readers (watchers) never wait for the writer; commits stay durable.
                        sqlx::Executor::execute(
                            &mut *conn,
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(StoreError::Connect)?;
        let migrator = Migrator::new(Embedded).await.map_err(StoreError::Migrate)?;
        migrator.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self {
            pool,
            postgres: !sqlite,
            writes: sqlite.then(|| tokio::sync::Mutex::new(())),
        })
    }

    /// On SQLite, waits for this daemon's other frequent writers (the event writer's
    /// batches, claims, heartbeats, a rollout's end) to be done, and holds the turn while
    /// the guard lives; `None` on PostgreSQL, whose writers take row locks.
    ///
    /// SQLite lets one writer in at a time (SQLite docs, "Write-Ahead Logging",
    /// "Concurrency": "there can only be one writer at a time"); a second one gets
    /// `SQLITE_BUSY`, and the handler `busy_timeout` installs sleeps 1, 2, 5, 10, 15, 20 ms
    /// … before each new try (`sqliteDefaultBusyCallback`, SQLite's `main.c`), however soon
    /// the first commits. Waiting here instead wakes it as the first one is done: 944 such
    /// sleeps in a rollout of 2,000 schema tenants became 3. Hold it around one write (or
    /// one write transaction) only, and never take it twice: it is not reentrant.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writes {
            Some(turn) => Some(turn.lock().await),
            None => None,
        }
    }
}

impl Store {
    /// The store's own clock in SQL, as ms since the epoch: lease times are judged by it,
    /// never by a replica's clock, so replicas whose clocks disagree still agree on whose
    /// lease ran out.
    fn clock(&self) -> &'static str {
        if self.postgres {
            "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
        } else {
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
        }
    }
}

/// Creates the directory of a `sqlite://dir/file.db` URL; a failure shows when connecting.
fn make_sqlite_dir(url: &str) {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
}

/// Column `i` of `row`, decoded.
fn get<'r, T>(row: &'r sqlx::any::AnyRow, i: usize, context: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Row::try_get(row, i).map_err(StoreError::query(context))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
