//! Each tool's order and directives as the tool has them (issue 28), on every dialect:
//! diesel's versions ordered as text (apply, `--to`, adopt, current version), `rollback
//! --to 0` taking diesel's version 0 along, Flyway's baseline migrations, dbmate's several
//! sections per file, and a refused `BEGIN`/`COMMIT` naming the format's way out.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_daemon::DialectKind;
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, only, pb, request};

use super::{on_every_dialect, started};

/// The `name` of every `MigrationStarted` event for `tenant`, in order.
fn started_names(run: &avocet_client::RolloutRecord, tenant: &str) -> Vec<String> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::MigrationStarted(m)) if m.tenant == tenant => {
                Some(m.name.clone())
            }
            _ => None,
        })
        .collect()
}

fn ok(run: &avocet_client::RolloutRecord, context: &str) -> anyhow::Result<()> {
    let finished = run.finished().context("finished")?;
    ensure!(finished.failed == 0, "{context}: {run:?}");
    Ok(())
}

/// An apply of the tenants `ids` up to `to` (all when `None`).
fn apply_to(ids: &[&str], to: Option<&str>) -> pb::ApplyRequest {
    pb::ApplyRequest {
        selector: only(ids),
        target_version: to.map(pb::Version::from_shown),
        ..request()
    }
}

/// diesel's initial setup as diesel writes it for PostgreSQL (two functions); a table
/// elsewhere, where diesel writes none.
fn initial_setup(d: DialectKind) -> (&'static str, &'static str) {
    match d {
        DialectKind::Postgres => (
            "CREATE OR REPLACE FUNCTION diesel_manage_updated_at(_tbl regclass) RETURNS VOID AS $$\n\
             BEGIN\n    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s\n\
             FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', _tbl);\nEND;\n\
             $$ LANGUAGE plpgsql;\n\n\
             CREATE OR REPLACE FUNCTION diesel_set_updated_at() RETURNS trigger AS $$\n\
             BEGIN\n    NEW.updated_at := current_timestamp;\n    RETURN NEW;\nEND;\n\
             $$ LANGUAGE plpgsql;\n",
            "DROP FUNCTION IF EXISTS diesel_manage_updated_at(_tbl regclass);\n\
             DROP FUNCTION IF EXISTS diesel_set_updated_at();\n",
        ),
        _ => ("CREATE TABLE setup (id int);", "DROP TABLE setup;"),
    }
}

/// crates.io's mix: 14-digit versions, 18-digit ones ending `-0000` (diesel 2.3), and a
/// later 14-digit one dated after them. `(directory, table)`, in diesel's order.
const DIESEL_DIRS: [(&str, &str); 4] = [
    ("2024-03-13-170000", "people"),
    ("2025-11-19-123456-0000", "pets"),
    ("2025-12-29-110242-0000", "toys"),
    ("2026-01-20-162913", "cars"),
];

/// Tenant `i` made by diesel half-way: the initial setup and the first three migrations
/// run, and diesel's own history table saying so.
async fn diesel_half_way(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    let mut sql = format!("{}\n", initial_setup(fleet.dialect).0);
    for (_, table) in &DIESEL_DIRS[..3] {
        sql.push_str(&format!("CREATE TABLE {table} (id int);\n"));
    }
    fleet.exec(i, &sql).await?;
    let mut history = "CREATE TABLE __diesel_schema_migrations (\n\
         version VARCHAR(50) PRIMARY KEY NOT NULL,\n\
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n\
         INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000');\n"
        .to_owned();
    for (dir, _) in &DIESEL_DIRS[..3] {
        let version = dir.replace('-', "");
        history.push_str(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');\n"
        ));
    }
    fleet.exec(i, &history).await
}

/// diesel's text order on `fleet` (t00, t01 fresh; t02 made by diesel half-way): a plan to
/// the later 14-digit version takes the 18-digit ones along; an apply to an 18-digit one
/// leaves the later 14-digit one out; the rest applies without `out_of_order`; the current
/// version is diesel's newest; an adoption of diesel's half-way history applies the rest;
/// and `rollback --to 0` rolls back everything, the initial setup included.
async fn diesel_order(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("diesel order on {}", fleet.dialect);
    let set = MigrationCopy::empty()?;
    let setup = initial_setup(fleet.dialect);
    std::fs::create_dir(set.path().join("00000000000000_diesel_initial_setup"))?;
    set.write("00000000000000_diesel_initial_setup/up.sql", setup.0)?;
    set.write("00000000000000_diesel_initial_setup/down.sql", setup.1)?;
    for (dir, table) in DIESEL_DIRS {
        std::fs::create_dir(set.path().join(format!("{dir}_{table}")))?;
        set.write(
            &format!("{dir}_{table}/up.sql"),
            &format!("CREATE TABLE {table} (id int);"),
        )?;
        set.write(
            &format!("{dir}_{table}/down.sql"),
            &format!("DROP TABLE {table};"),
        )?;
    }
    diesel_half_way(&fleet, 2).await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut client = daemon.client();
    let all = [
        "0",
        "20240313170000",
        "202511191234560000",
        "202512291102420000",
        "20260120162913",
    ];

    let plan = client
        .plan(pb::PlanRequest {
            fleet: FLEET.into(),
            selector: only(&["t00"]),
            target_version: Some(pb::Version::from_shown("20260120162913")),
            ..Default::default()
        })
        .await?;
    let steps: Vec<String> = plan.tenants[0]
        .steps
        .iter()
        .map(|s| s.version.text())
        .collect();
    ensure!(
        steps == all,
        "{context}: plan --to 20260120162913: {steps:?}"
    );

    let first = daemon
        .apply(apply_to(&["t00", "t01"], Some("202512291102420000")))
        .await?;
    ok(&first, &context)?;
    ensure!(
        started(&first, "t00") == all[..4],
        "{context}: apply --to 202512291102420000: {first:?}"
    );
    let rest = daemon.apply(apply_to(&["t00", "t01"], None)).await?;
    ok(&rest, &context)?;
    ensure!(started(&rest, "t01") == all[4..], "{context}: {rest:?}");
    let history = client.history(FLEET, "t00").await?;
    ensure!(
        history.current_version.text() == "20260120162913",
        "{context}: current version {}",
        history.current_version.text()
    );
    let listed: Vec<String> = history.records.iter().map(|r| r.version.text()).collect();
    ensure!(listed == all, "{context}: History lists {listed:?}");

    let adopted = client
        .baseline(pb::BaselineRequest {
            fleet: FLEET.into(),
            selector: only(&["t02"]),
            adopt_from: "diesel".into(),
            ..Default::default()
        })
        .await?;
    ensure!(
        adopted.tenants[0].error.is_empty() && adopted.tenants[0].baselined == 4,
        "{context}: {adopted:?}"
    );
    let after = daemon.apply(apply_to(&["t02"], None)).await?;
    ok(&after, &context)?;
    ensure!(started(&after, "t02") == all[4..], "{context}: {after:?}");

    let back = daemon
        .rollback(pb::rollback_request::Target::ToVersion(0.into()))
        .await?;
    ok(&back, &context)?;
    let mut reversed = all.to_vec();
    reversed.reverse();
    ensure!(started(&back, "t00") == reversed, "{context}: {back:?}");
    for i in 0..3 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        let left: Vec<&String> = tables
            .iter()
            .filter(|t| !t.starts_with("avocet_") && !t.starts_with("__diesel"))
            .collect();
        ensure!(left.is_empty(), "{context}: t0{i} still has {left:?}");
        if fleet.dialect == DialectKind::Postgres {
            let functions = fleet.objects(i, "function").await?;
            ensure!(functions.is_empty(), "{context}: t0{i} keeps {functions:?}");
        }
        let states: Vec<String> = fleet
            .history_text(i)
            .await?
            .into_iter()
            .map(|h| h.1)
            .collect();
        ensure!(
            states.iter().all(|s| s == "rolled_back"),
            "{context}: t0{i} {states:?}"
        );
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn diesel_orders_versions_as_text_and_rollback_to_0_takes_version_0() -> anyhow::Result<()> {
    on_every_dialect_of(3, diesel_order).await
}

/// Flyway's baseline migration `B2` beside `V1`, `V2`, `V3`: a tenant with no history runs
/// `B2` then `V3`, and nothing is pending after; a tenant with history (`V1`, applied with
/// `--to 1`, below the baseline) ignores it and runs `V2`, `V3`.
async fn flyway_baseline(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("Flyway baseline migration on {}", fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write("V1__Create_people.sql", "CREATE TABLE people (id int);")?;
    set.write("V2__Create_pets.sql", "CREATE TABLE pets (id int);")?;
    set.write(
        "B2__Baseline.sql",
        "CREATE TABLE people (id int);\nCREATE TABLE pets (id int);\n",
    )?;
    set.write("V3__Create_toys.sql", "CREATE TABLE toys (id int);")?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut client = daemon.client();

    let fresh = daemon.apply(apply_to(&["t00"], None)).await?;
    ok(&fresh, &context)?;
    ensure!(
        started_names(&fresh, "t00") == ["Baseline", "Create_toys"],
        "{context}: a fresh tenant: {fresh:?}"
    );
    let low = daemon.apply(apply_to(&["t01"], Some("1"))).await?;
    ok(&low, &context)?;
    ensure!(
        started_names(&low, "t01") == ["Create_people"],
        "{context}: {low:?}"
    );
    let rest = daemon.apply(apply_to(&["t01"], None)).await?;
    ok(&rest, &context)?;
    ensure!(
        started_names(&rest, "t01") == ["Create_pets", "Create_toys"],
        "{context}: a tenant with history: {rest:?}"
    );
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        for table in ["people", "pets", "toys"] {
            ensure!(tables.contains(table), "{context}: t0{i}: {tables:?}");
        }
    }
    // Nothing pending, as the run left it and as read now; verify finds nothing.
    let known = daemon.known_status().await?;
    let refreshed = daemon.status().await?;
    for status in [&known, &refreshed] {
        ensure!(
            status.up_to_date == 2 && status.pending == 0 && status.latest_version.text() == "3",
            "{context}: {status:?}"
        );
    }
    let verify = daemon.verify().await?;
    ensure!(verify.tenants.iter().all(|t| t.ok), "{context}: {verify:?}");
    let history = client.history(FLEET, "t00").await?;
    ensure!(
        history.pending_versions.is_empty() && history.current_version.text() == "3",
        "{context}: {history:?}"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn flyway_baseline_migrations_start_a_fresh_tenant() -> anyhow::Result<()> {
    on_every_dialect(flyway_baseline).await
}

/// dbmate's several sections per file: both `up` blocks run, a rollback runs both `down`
/// blocks (and nothing of the second `up`), and a file without a `down` block is warned
/// about with dbmate's rule.
async fn dbmate_sections(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("dbmate sections on {}", fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write(
        "20240313170000_toys.sql",
        "-- migrate:up\nCREATE TABLE toys (id int);\n",
    )?;
    set.write(
        "20240314090000_people_and_pets.sql",
        "-- migrate:up\nCREATE TABLE people (id int);\n\n-- migrate:down\nDROP TABLE people;\n\n\
         -- migrate:up\nCREATE TABLE pets (id int);\n\n-- migrate:down\nDROP TABLE pets;\n",
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let plan = daemon.plan().await?;
    ensure!(
        plan.set_warnings
            .iter()
            .any(|w| w.contains("20240313170000_toys.sql")
                && w.contains("dbmate requires each migration to define a down block")),
        "{context}: {:?}",
        plan.set_warnings
    );
    let run = daemon.apply_all().await?;
    ok(&run, &context)?;
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        for table in ["toys", "people", "pets"] {
            ensure!(tables.contains(table), "{context}: t0{i}: {tables:?}");
        }
    }
    let back = daemon
        .rollback(pb::rollback_request::Target::Steps(1))
        .await?;
    ok(&back, &context)?;
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            tables.contains("toys") && !tables.contains("people") && !tables.contains("pets"),
            "{context}: t0{i} after the rollback: {tables:?}"
        );
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn dbmate_runs_every_section_of_a_file() -> anyhow::Result<()> {
    on_every_dialect(dbmate_sections).await
}

/// A Flyway file with its own `BEGIN`/`COMMIT` on a dialect whose migrations run in a
/// transaction: refused with Flyway's own way out named; once the `.sql.conf` says
/// `executeInTransaction=false`, it applies.
async fn flyway_begin_commit(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("Flyway BEGIN/COMMIT on {}", fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write(
        "V1__Create_people.sql",
        "BEGIN;\nCREATE TABLE people (id int);\nCOMMIT;\n",
    )?;
    // The daemon starts; the fleet is broken and says why (issue 24, item 9).
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let fleets = daemon.client().list_fleets().await?;
    let refused = fleets.first().map(|f| f.error.clone()).unwrap_or_default();
    ensure!(
        refused.contains("V1__Create_people.sql")
            && refused.contains("executeInTransaction=false")
            && refused.contains("-- avocet:no-transaction"),
        "{context}: {refused}"
    );
    // The fix needs no restart.
    set.write("V1__Create_people.sql.conf", "executeInTransaction=false\n")?;
    let run = daemon.apply_all().await?;
    ok(&run, &context)?;
    for i in 0..2 {
        ensure!(
            fleet.objects(i, "BASE TABLE").await?.contains("people"),
            "{context}"
        );
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_begin_commit_names_flyways_own_fix() -> anyhow::Result<()> {
    // MySQL runs every migration statement by statement: nothing to refuse there.
    flyway_begin_commit(Fleet::sqlite(2).await?).await?;
    flyway_begin_commit(Fleet::postgres(2).await?).await
}

/// Runs `test` on `n` fresh SQLite, then PostgreSQL, then MariaDB tenants.
async fn on_every_dialect_of<F, Fut>(n: usize, test: F) -> anyhow::Result<()>
where
    F: Fn(Fleet) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    test(Fleet::sqlite(n).await?).await?;
    test(Fleet::postgres(n).await?).await?;
    test(Fleet::mysql(n).await?).await
}
