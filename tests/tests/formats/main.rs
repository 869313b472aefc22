//! Migration sets read unchanged in each tool's layout (issue 10): a directory laid out as
//! sqlx, golang-migrate, diesel, dbmate, Flyway or refinery documents it is applied to real
//! PostgreSQL, MariaDB and SQLite tenants, each format's no-transaction directive carries a
//! PostgreSQL `CREATE INDEX CONCURRENTLY` (which fails inside a transaction), the history
//! records the tool's own versions, and formats with `down` scripts roll back to nothing.
//! Flyway's dotted versions, its repeatable `R__` migrations and refinery's unversioned
//! files each have a test of their own; each tool's order and directives as the tool has
//! them (issue 28) are in `tool_rules.rs`.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_daemon::{DialectKind, model::SetFormat};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb};

/// The three migrations every layout holds: a table, an index that must run outside a
/// transaction on PostgreSQL, and another table.
struct Scripts {
    people: (&'static str, &'static str),
    index: (String, String),
    pets: (&'static str, &'static str),
}

fn scripts(dialect: DialectKind) -> Scripts {
    let index = match dialect {
        DialectKind::Postgres => (
            "CREATE INDEX CONCURRENTLY people_id ON people (id);",
            "DROP INDEX CONCURRENTLY people_id;",
        ),
        DialectKind::Mysql => (
            "CREATE INDEX people_id ON people (id);",
            "DROP INDEX people_id ON people;",
        ),
        DialectKind::Sqlite => (
            "CREATE INDEX people_id ON people (id);",
            "DROP INDEX people_id;",
        ),
    };
    Scripts {
        people: ("CREATE TABLE people (id int);", "DROP TABLE people;"),
        index: (index.0.to_owned(), index.1.to_owned()),
        pets: ("CREATE TABLE pets (id int);", "DROP TABLE pets;"),
    }
}

/// Writes `format`'s layout of [`scripts`] and returns the versions its tool gives them.
fn lay_out(set: &MigrationCopy, format: SetFormat, d: DialectKind) -> anyhow::Result<Vec<i64>> {
    let s = scripts(d);
    let (index_up, index_down) = (s.index.0.as_str(), s.index.1.as_str());
    match format {
        SetFormat::Sqlx => {
            set.write("0001_people.up.sql", s.people.0)?;
            set.write("0001_people.down.sql", s.people.1)?;
            set.write(
                "0002_index.up.sql",
                &format!("-- no-transaction\n{index_up}"),
            )?;
            set.write(
                "0002_index.down.sql",
                &format!("-- no-transaction\n{index_down}"),
            )?;
            set.write("0003_pets.up.sql", s.pets.0)?;
            set.write("0003_pets.down.sql", s.pets.1)?;
            Ok(vec![1, 2, 3])
        }
        SetFormat::GolangMigrate => {
            // golang-migrate has no directive: its index is a plain one.
            let plain = index_up.replace(" CONCURRENTLY", "");
            let plain_down = index_down.replace(" CONCURRENTLY", "");
            set.write("1_people.up.sql", s.people.0)?;
            set.write("1_people.down.sql", s.people.1)?;
            set.write("1500360784_index.up.sql", &plain)?;
            set.write("1500360784_index.down.sql", &plain_down)?;
            set.write("1500360785_pets.up.sql", s.pets.0)?;
            set.write("1500360785_pets.down.sql", s.pets.1)?;
            Ok(vec![1, 1500360784, 1500360785])
        }
        SetFormat::Diesel => {
            for (dir, (up, down)) in [
                ("2024-03-13-170000_people", (s.people.0, s.people.1)),
                ("2024-03-14-090000_index", (index_up, index_down)),
                ("2024-03-15-100000_pets", (s.pets.0, s.pets.1)),
            ] {
                std::fs::create_dir(set.path().join(dir))?;
                set.write(&format!("{dir}/up.sql"), up)?;
                set.write(&format!("{dir}/down.sql"), down)?;
            }
            set.write(
                "2024-03-14-090000_index/metadata.toml",
                "run_in_transaction = false\n",
            )?;
            Ok(vec![20240313170000, 20240314090000, 20240315100000])
        }
        SetFormat::Dbmate => {
            set.write(
                "20240313170000_people.sql",
                &format!(
                    "-- migrate:up\n{}\n\n-- migrate:down\n{}\n",
                    s.people.0, s.people.1
                ),
            )?;
            set.write(
                "20240314090000_index.sql",
                &format!(
                    "-- migrate:up transaction:false\n{index_up}\n\n\
                     -- migrate:down transaction:false\n{index_down}\n"
                ),
            )?;
            set.write(
                "20240315100000_pets.sql",
                &format!(
                    "-- migrate:up\n{}\n\n-- migrate:down\n{}\n",
                    s.pets.0, s.pets.1
                ),
            )?;
            Ok(vec![20240313170000, 20240314090000, 20240315100000])
        }
        SetFormat::Flyway => {
            set.write("V1__Create_people.sql", s.people.0)?;
            set.write("U1__Create_people.sql", s.people.1)?;
            set.write("V2__Index_people.sql", index_up)?;
            set.write("V2__Index_people.sql.conf", "executeInTransaction=false\n")?;
            set.write("U2__Index_people.sql", index_down)?;
            set.write("U2__Index_people.sql.conf", "executeInTransaction=false\n")?;
            set.write("V3__Create_pets.sql", s.pets.0)?;
            set.write("U3__Create_pets.sql", s.pets.1)?;
            Ok(vec![1, 2, 3])
        }
        SetFormat::Refinery => {
            set.write("V1__people.sql", s.people.0)?;
            set.write(
                "V2__index.sql",
                &format!("-- refinery:noTransaction\n{index_up}"),
            )?;
            set.write("V3__pets.sql", s.pets.0)?;
            Ok(vec![1, 2, 3])
        }
        SetFormat::Auto => anyhow::bail!("a test lays out a real format"),
    }
}

/// Applies `format`'s layout to two tenants of `fleet`, configured as `configured`, checks
/// the schema and the history, then rolls everything back where the format has downs.
async fn apply_and_roll_back(
    fleet: Fleet,
    format: SetFormat,
    configured: SetFormat,
) -> anyhow::Result<()> {
    let context = format!("{format} on {}", fleet.dialect);
    let set = MigrationCopy::empty()?;
    let versions = lay_out(&set, format, fleet.dialect)?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    config.fleets.get_mut(FLEET).context("fleet")?.format = configured;
    let daemon = TestDaemon::start_with(config).await?;
    let fleets = daemon.client().list_fleets().await?;
    ensure!(
        fleets.iter().map(|f| f.format.as_str()).collect::<Vec<_>>() == [format.as_str()],
        "{context}: the layout read: {fleets:?}"
    );
    let run = daemon.apply_all().await.context(context.clone())?;
    let finished = run.finished().context("finished")?;
    ensure!(
        finished.failed == 0 && finished.migrations_run == 6,
        "{context}: {run:?}"
    );
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            tables.contains("people") && tables.contains("pets"),
            "{context}: {tables:?}"
        );
        let indexes = fleet.objects(i, "index").await?;
        ensure!(indexes.contains("people_id"), "{context}: {indexes:?}");
        let history = versions_of(&fleet, i).await?;
        let expected: Vec<String> = versions.iter().map(i64::to_string).collect();
        ensure!(history == expected, "{context}: {history:?}");
    }
    if format != SetFormat::Refinery {
        let back = daemon
            .rollback(pb::rollback_request::Target::Steps(3))
            .await?;
        let finished = back.finished().context("finished")?;
        ensure!(
            finished.failed == 0 && finished.migrations_run == 6,
            "{context}: {back:?}"
        );
        for i in 0..2 {
            let tables = fleet.objects(i, "BASE TABLE").await?;
            ensure!(
                !tables.contains("people") && !tables.contains("pets"),
                "{context}: rolled back, yet {tables:?}"
            );
            let states: Vec<String> = fleet
                .history_text(i)
                .await?
                .into_iter()
                .map(|h| h.1)
                .collect();
            ensure!(
                states.iter().all(|s| s == "rolled_back"),
                "{context}: {states:?}"
            );
        }
    }
    daemon.stop().await
}

/// `format` on all three dialects, detected (`auto`) and, for golang-migrate whose layout
/// is sqlx's, configured.
async fn every_dialect(format: SetFormat) -> anyhow::Result<()> {
    let configured = match format {
        SetFormat::GolangMigrate => SetFormat::GolangMigrate,
        _ => SetFormat::Auto,
    };
    on_every_dialect(|fleet| apply_and_roll_back(fleet, format, configured)).await
}

/// Runs `test` on two fresh SQLite, then PostgreSQL, then MariaDB tenants.
async fn on_every_dialect<F, Fut>(test: F) -> anyhow::Result<()>
where
    F: Fn(Fleet) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    test(Fleet::sqlite(2).await?).await?;
    test(Fleet::postgres(2).await?).await?;
    test(Fleet::mysql(2).await?).await
}

/// Tenant `i`'s history versions as text, in version order.
async fn versions_of(fleet: &Fleet, i: usize) -> anyhow::Result<Vec<String>> {
    Ok(fleet
        .history_text(i)
        .await?
        .into_iter()
        .map(|h| h.0)
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlx_layout() -> anyhow::Result<()> {
    every_dialect(SetFormat::Sqlx).await
}

#[tokio::test(flavor = "multi_thread")]
async fn golang_migrate_layout() -> anyhow::Result<()> {
    every_dialect(SetFormat::GolangMigrate).await
}

#[tokio::test(flavor = "multi_thread")]
async fn diesel_layout() -> anyhow::Result<()> {
    every_dialect(SetFormat::Diesel).await
}

#[tokio::test(flavor = "multi_thread")]
async fn dbmate_layout() -> anyhow::Result<()> {
    every_dialect(SetFormat::Dbmate).await
}

#[tokio::test(flavor = "multi_thread")]
async fn flyway_layout() -> anyhow::Result<()> {
    every_dialect(SetFormat::Flyway).await
}

#[tokio::test(flavor = "multi_thread")]
async fn refinery_layout() -> anyhow::Result<()> {
    every_dialect(SetFormat::Refinery).await
}

/// The version (as the set writes it) of every `MigrationStarted` event for `tenant`, in order.
fn started(run: &avocet_client::RolloutRecord, tenant: &str) -> Vec<String> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::MigrationStarted(m)) if m.tenant == tenant => {
                Some(m.version.text())
            }
            _ => None,
        })
        .collect()
}

/// Flyway's dotted versions on `fleet`: `1 < 1.2 < 1.10` (not text order), `V1_2` read
/// as `1.2`, a plan and a rollback to a dotted version, the history stored as text.
async fn dotted(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("dotted Flyway versions on {}", fleet.dialect);
    let s = scripts(fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write("V1__Create_people.sql", s.people.0)?;
    set.write("U1__Create_people.sql", s.people.1)?;
    set.write("V1_2__Index_people.sql", &s.index.0)?;
    set.write(
        "V1_2__Index_people.sql.conf",
        "executeInTransaction=false\n",
    )?;
    set.write("U1_2__Index_people.sql", &s.index.1)?;
    set.write(
        "U1_2__Index_people.sql.conf",
        "executeInTransaction=false\n",
    )?;
    set.write("V1.10__Create_pets.sql", s.pets.0)?;
    set.write("U1.10__Create_pets.sql", s.pets.1)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut client = daemon.client();
    let order = ["1", "1.2", "1.10"].map(String::from);

    let plan = client
        .plan(pb::PlanRequest {
            fleet: FLEET.into(),
            target_version: Some(pb::Version::from_shown("1.2")),
            ..Default::default()
        })
        .await?;
    let steps: Vec<String> = plan.tenants[0]
        .steps
        .iter()
        .map(|s| s.version.text())
        .collect();
    ensure!(steps == ["1", "1.2"], "{context}: plan to 1.2: {steps:?}");

    let run = daemon.apply_all().await?;
    ensure!(
        run.finished().context("finished")?.failed == 0,
        "{context}: {run:?}"
    );
    for i in 0..2 {
        let tenant = format!("t{i:02}");
        ensure!(started(&run, &tenant) == order, "{context}: {run:?}");
        let stored = versions_of(&fleet, i).await?;
        ensure!(
            stored == order,
            "{context}: the history table holds {stored:?}"
        );
        let history = client.history(FLEET, &tenant).await?;
        let listed: Vec<String> = history.records.iter().map(|r| r.version.text()).collect();
        ensure!(listed == order, "{context}: History lists {listed:?}");
        ensure!(
            history.current_version.text() == "1.10" && history.current_version.int().is_none()
        );
    }
    let status = client
        .status(pb::StatusRequest {
            fleet: FLEET.into(),
            refresh: true,
            ..Default::default()
        })
        .await?;
    ensure!(
        status.latest_version.text() == "1.10",
        "{context}: {status:?}"
    );

    let back = daemon
        .rollback(pb::rollback_request::Target::ToVersion(
            pb::Version::from_shown("1"),
        ))
        .await?;
    ensure!(
        started(&back, "t00") == ["1.10", "1.2"],
        "{context}: {back:?}"
    );
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            tables.contains("people") && !tables.contains("pets"),
            "{context}: rolled back to 1, yet {tables:?}"
        );
        ensure!(!fleet.objects(i, "index").await?.contains("people_id"));
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn flyway_dotted_versions() -> anyhow::Result<()> {
    on_every_dialect(dotted).await
}

/// refinery's unversioned `U2__…` added after `V3__…` ran: the next apply runs it, below
/// the newest applied version, without `allow_out_of_order` (a `V2__…` would be refused).
async fn unversioned(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("refinery U file on {}", fleet.dialect);
    let s = scripts(fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write("V1__people.sql", s.people.0)?;
    set.write("V3__pets.sql", s.pets.0)?;
    // Without refinery's directive in a file, `auto` reads `V…__` files as Flyway's.
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    config.fleets.get_mut(FLEET).context("fleet")?.format = SetFormat::Refinery;
    let daemon = TestDaemon::start_with(config).await?;
    let first = daemon.apply_all().await?;
    ensure!(
        first.finished().context("finished")?.failed == 0,
        "{context}: {first:?}"
    );

    let index = format!("-- refinery:noTransaction\n{}", s.index.0);
    set.write("V2__index.sql", &index)?;
    let refused = daemon.apply_all().await?;
    ensure!(
        refused.finished().context("finished")?.failed == 2,
        "{context}: a versioned file below the newest applied one must be refused: {refused:?}"
    );
    std::fs::remove_file(set.path().join("V2__index.sql"))?;
    set.write("U2__index.sql", &index)?;
    let run = daemon.apply_all().await?;
    ensure!(started(&run, "t00") == ["2"], "{context}: {run:?}");
    ensure!(
        run.finished().context("finished")?.failed == 0,
        "{context}: {run:?}"
    );
    for i in 0..2 {
        ensure!(
            fleet.objects(i, "index").await?.contains("people_id"),
            "{context}"
        );
        let history = versions_of(&fleet, i).await?;
        ensure!(history == ["1", "2", "3"], "{context}: {history:?}");
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn refinery_unversioned_files() -> anyhow::Result<()> {
    on_every_dialect(unversioned).await
}

mod repeatable;
mod tool_rules;
