//! Real projects' migration directories, read unchanged (issue 28): each is applied with
//! Avocet to one tenant and by the database's own client, in its tool's order, to another
//! (`native.rs`); the two schemas, dumped with `pg_dump --schema-only` or `mariadb-dump
//! --no-data` without Avocet's tables, must be identical. Where the project's own `down`
//! files allow it, both are rolled back as far as those files go and compared again.
//!
//! The directories are vendored under `tests/fixtures/`, each with its project's license:
//!
//! | fixture | project | layout | commit | path in the project | license |
//! | --- | --- | --- | --- | --- | --- |
//! | `crates.io` | rust-lang/crates.io | diesel | `57fa000662f511321daa61e6769f190ea0e80771` | `migrations/` | MIT or Apache-2.0 |
//! | `pocket-id` | pocket-id/pocket-id | golang-migrate | `d258d952b1573300860aff369e300a76f6fb5f09` | `backend/resources/migrations/postgres/` | BSD-2-Clause |
//! | `hawkbit-flyway` | eclipse-hawkbit/hawkbit | Flyway, dotted versions | `6b3fbef400d2a439cb5de9823c77c8f161f7f1ed` | `hawkbit-repository/hawkbit-repository-jpa-flyway/src/main/resources/db/migration/{MYSQL,POSTGRESQL}/` | EPL-2.0 |
//! | `hawkbit-baseline` | eclipse-hawkbit/hawkbit | Flyway, from a baseline migration | `67ca1c43321e6b5ed091b667bf36d27dab0cf3eb` | the same | EPL-2.0 |
//! | `ftl` | block/ftl | dbmate | `cecacf5ecccbcda5122241f0f0cf472cc8abae3c` | `backend/controller/sql/schema/` | Apache-2.0 |
//! | `vaultwarden` | dani-garcia/vaultwarden | diesel | `46d71107f5094460dd5ecbe1dbac6e6c71e5189a` | `migrations/{mysql,sqlite}/` | AGPL-3.0 |
//!
//! Each test prints its row of the table in `docs/formats.md` (`--nocapture` shows it);
//! timings are printed, never asserted.

mod native;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use avocet_daemon::{DialectKind, model::SetFormat};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, clients, only, pb, request};
use native::{Reach, Target};
use sqlx::{Connection, Row};

/// Avocet's own tables, left out of every comparison.
const AVOCET_TABLES: [&str; 2] = ["avocet_migrations", "avocet_migrations_log"];

/// One project's migration directory on one database.
struct Project {
    /// Its name in the table.
    name: &'static str,
    /// The directory under `tests/fixtures/`.
    dir: &'static str,
    format: SetFormat,
    dialect: DialectKind,
    /// Flyway script configuration the project needs to run inside Avocet, written beside
    /// the files in a copy: `(file, .sql.conf text)`.
    conf: &'static [(&'static str, &'static str)],
    /// Statements the project runs on its migration session first (Avocet's
    /// `session_init`; the native client runs them at the start of each file).
    session_init: &'static [&'static str],
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The schema of tenant `i`, without Avocet's tables.
async fn schema(fleet: &Fleet, i: usize) -> anyhow::Result<String> {
    let dsn = fleet.tenants[i].dsn.clone();
    match fleet.dialect {
        DialectKind::Postgres => {
            tokio::task::spawn_blocking(move || clients::pg_dump_schema(&dsn, &AVOCET_TABLES))
                .await?
        }
        DialectKind::Mysql => {
            tokio::task::spawn_blocking(move || clients::mariadb_dump_schema(&dsn, &AVOCET_TABLES))
                .await?
        }
        DialectKind::Sqlite => {
            let mut conn = fleet.connect(i).await?;
            let rows = sqlx::query(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE \
                 'avocet_migrations%' AND name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get::<String, _>(0).map(|s| s + ";\n"))
                .collect::<Result<String, _>>()?)
        }
    }
}

/// The lines `a` and `b` do not share, at most 20, for a failure's message.
fn difference(a: &str, b: &str) -> String {
    let only = |x: &str, y: &str, tag: &str| -> Vec<String> {
        let other: std::collections::BTreeSet<&str> = y.lines().collect();
        x.lines()
            .filter(|l| !other.contains(l))
            .map(|l| format!("{tag} {l}"))
            .collect()
    };
    let mut lines = only(a, b, "avocet:");
    lines.extend(only(b, a, "native:"));
    lines.truncate(20);
    lines.join("\n")
}

/// Where `a` and `b` first differ, in bytes (a char boundary of `a`).
fn first_difference(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

/// Compares tenant 0 (Avocet) with tenant 1 (the native client).
async fn same_schema(fleet: &Fleet, context: &str) -> anyhow::Result<String> {
    let (avocet, native) = (schema(fleet, 0).await?, schema(fleet, 1).await?);
    ensure!(
        avocet == native,
        "{context}: the schemas differ:\n{}",
        difference(&avocet, &native)
    );
    Ok(avocet)
}

/// Runs `steps` natively on tenant 1 of `fleet`, off the async runtime, stopping at the
/// first that fails: the time the client runs took, and the failing step's version and
/// error.
async fn run_native(
    fleet: &Fleet,
    steps: Vec<native::Step>,
    init: &[&str],
) -> anyhow::Result<(Duration, Option<(String, anyhow::Error)>)> {
    let init: String = init.iter().map(|s| format!("{s};\n")).collect();
    let dsn = fleet.tenants[1].dsn.clone();
    let dialect = fleet.dialect;
    Ok(tokio::task::spawn_blocking(move || {
        let db;
        let target = match dialect {
            DialectKind::Postgres => Target::Postgres(&dsn),
            DialectKind::Mysql => Target::Mariadb(&dsn),
            DialectKind::Sqlite => {
                db = PathBuf::from(
                    dsn.trim_start_matches("sqlite://")
                        .split('?')
                        .next()
                        .unwrap_or_default(),
                );
                Target::Sqlite(&db)
            }
        };
        native::run_until_failure(&steps, &target, &init)
    })
    .await?)
}

fn millis(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Applies `project` both ways, compares, rolls back both ways as far as its `down` files
/// go, compares again, and prints its row of the table.
async fn compare(project: Project) -> anyhow::Result<()> {
    let context = format!(
        "{} ({}) on {}",
        project.name, project.format, project.dialect
    );
    let fleet = match project.dialect {
        DialectKind::Postgres => Fleet::postgres(2).await?,
        DialectKind::Mysql => Fleet::mysql(2).await?,
        DialectKind::Sqlite => Fleet::sqlite(2).await?,
    };
    let source = fixtures().join(project.dir);
    // A copy only when the project needs configuration beside its files.
    let copy = match project.conf.is_empty() {
        true => None,
        false => Some(MigrationCopy::empty()?),
    };
    let dir = match &copy {
        None => source.clone(),
        Some(copy) => {
            for entry in std::fs::read_dir(&source)? {
                let entry = entry?;
                std::fs::copy(entry.path(), copy.path().join(entry.file_name()))?;
            }
            copy.path().to_owned()
        }
    };
    let mut config = TestDaemon::config(&fleet, &dir, Duration::from_secs(30))?;
    let fleet_config = config.fleets.get_mut(FLEET).context("fleet")?;
    fleet_config.format = project.format;
    fleet_config.session_init = project
        .session_init
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(copy) = &copy {
        // As the project's files are, Avocet refuses them, naming the fix: the daemon
        // starts, its fleet broken (issue 24, item 9).
        let broken = TestDaemon::start_with(config.clone()).await?;
        let fleets = broken.client().list_fleets().await?;
        broken.stop().await?;
        let refused = fleets.first().map(|f| f.error.clone()).unwrap_or_default();
        ensure!(
            refused.contains("executeInTransaction=false"),
            "{context}: {refused}"
        );
        for (file, conf) in project.conf {
            copy.write(&format!("{file}.conf"), conf)?;
        }
    }
    let daemon = TestDaemon::start_with(config).await?;

    let started = Instant::now();
    let run = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t00"]),
            accept_data_loss: true,
            ..request()
        })
        .await?;
    let avocet_time = started.elapsed();
    let finished = run.finished().context("finished")?;
    ensure!(finished.failed == 0, "{context}: {:?}", run.tenant("t00"));
    let migrations = finished.migrations_run;
    // Verify and History see what ran, with no drift and nothing pending.
    let verify = daemon
        .client()
        .verify_all(pb::VerifyRequest {
            fleet: FLEET.into(),
            selector: only(&["t00"]),
            ..Default::default()
        })
        .await?;
    let t00 = verify.tenants.first().context("t00")?;
    ensure!(t00.ok && t00.pending == 0, "{context}: {t00:?}");
    let history = daemon.client().history(FLEET, "t00").await?;
    ensure!(
        history.pending_versions.is_empty()
            && history.records.iter().all(|r| !r.drift && !r.missing),
        "{context}: {history:?}"
    );

    let ups = native::ups(project.format, &dir, project.dialect)?;
    let native_migrations = ups
        .iter()
        .map(|s| &s.version)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    ensure!(
        native_migrations == migrations as usize,
        "{context}: Avocet ran {migrations} migrations, the native run {native_migrations}"
    );
    let native_time = match run_native(&fleet, ups, project.session_init).await? {
        (spent, None) => spent,
        (_, Some((version, e))) => return Err(e.context(format!("{context}: version {version}"))),
    };
    let applied = same_schema(&fleet, &context).await?;
    ensure!(applied.contains("CREATE TABLE"), "{context}: nothing made");
    // The census reads both as one model, so one fingerprint (docs/census.md).
    let (by_avocet, by_client) = (
        avocet_tests::census::export(&daemon, "t00").await?,
        avocet_tests::census::export(&daemon, "t01").await?,
    );
    ensure!(
        by_avocet == by_client,
        "{context}: the census models differ from byte {}: {}",
        first_difference(&by_avocet, &by_client),
        &by_avocet[first_difference(&by_avocet, &by_client).saturating_sub(80)..]
            .chars()
            .take(240)
            .collect::<String>()
    );
    ensure!(by_avocet.len() > 100, "{context}: an empty census model");

    let rollback = roll_back(&daemon, &fleet, &project, &dir, &context).await?;
    println!(
        "| {} | {} | {} | {migrations} | {} | {} | identical | {rollback} |",
        project.name,
        project.format,
        project.dialect,
        millis(avocet_time),
        millis(native_time),
    );
    daemon.stop().await
}

/// Rolls tenant 1 back with the project's own `down` files, newest first, as far as they
/// go (to a version without one, or to the first that fails on the database), then tenant 0
/// with Avocet to the same version, and compares. What happened, for the table.
async fn roll_back(
    daemon: &TestDaemon,
    fleet: &Fleet,
    project: &Project,
    dir: &Path,
    context: &str,
) -> anyhow::Result<String> {
    let (downs, reach) = native::downs(project.format, dir, project.dialect)?;
    if reach == Reach::Nothing {
        return Ok("none: no down files".to_owned());
    }
    let (_, failed) = run_native(fleet, downs, project.session_init).await?;
    let (target, why) = match (failed, reach) {
        (Some((v, e)), _) => {
            let cause = e.root_cause().to_string();
            let why = match cause.lines().find_map(|l| l.split_once("ERROR:")) {
                Some((_, message)) => format!("its down fails: `{}`", message.trim()),
                None => format!("its down fails: {cause}"),
            };
            (
                pb::rollback_request::Target::ToVersion(pb::Version::from_shown(&v)),
                Some((v, why)),
            )
        }
        (None, Reach::DownTo(v)) => (
            pb::rollback_request::Target::ToVersion(pb::Version::from_shown(&v)),
            Some((v, "it has no down file".to_owned())),
        ),
        (None, _) => (pb::rollback_request::Target::ToVersion(0.into()), None),
    };
    let back = daemon
        .rollback_with(pb::RollbackRequest {
            fleet: FLEET.into(),
            selector: only(&["t00"]),
            target: Some(target),
            // The projects' down files drop what their ups made: the loss is the point.
            accept_data_loss: true,
            ..Default::default()
        })
        .await?;
    let finished = back.finished().context("finished")?;
    ensure!(
        finished.failed == 0,
        "{context}: rollback: {:?}",
        back.tenant("t00")
    );
    let left = same_schema(fleet, &format!("{context}, rolled back")).await?;
    let tables = left.matches("CREATE TABLE").count();
    let n = finished.migrations_run;
    Ok(match why {
        Some((v, why)) => format!("{n} rolled back, down to {v} ({why}): identical"),
        None => format!("all {n} rolled back: identical, {tables} table(s) left"),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn crates_io_diesel_on_postgres() -> anyhow::Result<()> {
    compare(Project {
        name: "crates.io",
        dir: "crates.io/migrations",
        format: SetFormat::Diesel,
        dialect: DialectKind::Postgres,
        conf: &[],
        session_init: &[],
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pocket_id_golang_migrate_on_postgres() -> anyhow::Result<()> {
    compare(Project {
        name: "pocket-id",
        dir: "pocket-id/postgres",
        format: SetFormat::GolangMigrate,
        dialect: DialectKind::Postgres,
        conf: &[],
        session_init: &[],
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hawkbit_dotted_flyway_versions_on_mariadb() -> anyhow::Result<()> {
    compare(Project {
        name: "hawkBit",
        dir: "hawkbit-flyway/mysql",
        format: SetFormat::Flyway,
        dialect: DialectKind::Mysql,
        conf: &[],
        session_init: &[],
    })
    .await
}

/// hawkBit's `V1_12_37__unify__POSTGRESQL.sql` holds its own `BEGIN;`…`COMMIT;`: Avocet
/// refuses it inside its transaction, naming Flyway's `executeInTransaction=false`, which
/// the test then writes in a `.sql.conf` beside it (for both runs).
#[tokio::test(flavor = "multi_thread")]
async fn hawkbit_dotted_flyway_versions_on_postgres() -> anyhow::Result<()> {
    compare(Project {
        name: "hawkBit",
        dir: "hawkbit-flyway/postgresql",
        format: SetFormat::Flyway,
        dialect: DialectKind::Postgres,
        conf: &[(
            "V1_12_37__unify__POSTGRESQL.sql",
            "executeInTransaction=false\n",
        )],
        session_init: &[],
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hawkbit_flyway_baseline_migration_on_mariadb() -> anyhow::Result<()> {
    compare(Project {
        name: "hawkBit 1.0 baseline",
        dir: "hawkbit-baseline/mysql",
        format: SetFormat::Flyway,
        dialect: DialectKind::Mysql,
        conf: &[],
        session_init: &[],
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hawkbit_flyway_baseline_migration_on_postgres() -> anyhow::Result<()> {
    compare(Project {
        name: "hawkBit 1.0 baseline",
        dir: "hawkbit-baseline/postgresql",
        format: SetFormat::Flyway,
        dialect: DialectKind::Postgres,
        conf: &[],
        session_init: &[],
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn ftl_dbmate_on_postgres() -> anyhow::Result<()> {
    compare(Project {
        name: "FTL",
        dir: "ftl/schema",
        format: SetFormat::Dbmate,
        dialect: DialectKind::Postgres,
        conf: &[],
        session_init: &[],
    })
    .await
}

/// vaultwarden turns foreign key checks off on the connection that runs its diesel
/// migrations (`src/db/mod.rs`), which Avocet's `session_init` does too.
#[tokio::test(flavor = "multi_thread")]
async fn vaultwarden_diesel_on_mariadb() -> anyhow::Result<()> {
    compare(Project {
        name: "vaultwarden",
        dir: "vaultwarden/mysql",
        format: SetFormat::Diesel,
        dialect: DialectKind::Mysql,
        conf: &[],
        session_init: &["SET FOREIGN_KEY_CHECKS = 0"],
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn vaultwarden_diesel_on_sqlite() -> anyhow::Result<()> {
    compare(Project {
        name: "vaultwarden",
        dir: "vaultwarden/sqlite",
        format: SetFormat::Diesel,
        dialect: DialectKind::Sqlite,
        conf: &[],
        session_init: &["PRAGMA foreign_keys = OFF"],
    })
    .await
}
