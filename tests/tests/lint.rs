//! The lint in a real apply: a migration that destroys data is refused without acceptance
//! (nothing runs on the tenant), runs with `accept_data_loss` or the file's
//! `-- avocet:allow-destructive`, and its findings reach the plan; checked in the tenants'
//! schemas on PostgreSQL.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, VersionField, pb};

#[tokio::test(flavor = "multi_thread")]
async fn destructive_migrations_need_acceptance() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_accounts.up.sql",
        "CREATE TABLE accounts (id int PRIMARY KEY, email text, legacy text);\n\
         CREATE TABLE scratch (a int);",
    )?;
    set.write("0001_accounts.down.sql", "DROP TABLE accounts;")?;
    set.write(
        "0002_drop_legacy.up.sql",
        "SELECT 1;\nALTER TABLE accounts DROP COLUMN legacy;",
    )?;
    set.write(
        "0003_scratch.up.sql",
        "-- avocet:allow-destructive\n-- scratch was never used\nDROP TABLE scratch;",
    )?;
    set.write(
        "0004_index.up.sql",
        "CREATE INDEX accounts_email ON accounts (email);",
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    let up_to = |v: i64, accept: bool| pb::ApplyRequest {
        fleet: avocet_tests::FLEET.into(),
        target_version: Some(pb::Version::number(v)),
        accept_data_loss: accept,
        ..Default::default()
    };
    let first = daemon.apply(up_to(1, false)).await?;
    ensure!(
        first.finished().context("finished")?.succeeded == 2,
        "{first:?}"
    );

    // The plan names the finding, its line and why; the tenants are blocked.
    let plan = c
        .plan(pb::PlanRequest {
            fleet: avocet_tests::FLEET.into(),
            ..Default::default()
        })
        .await?;
    let codes: Vec<(i64, &str, &str, u64)> = plan
        .findings
        .iter()
        .map(|f| {
            (
                f.version.int().unwrap_or_default(),
                f.code.as_str(),
                f.kind.as_str(),
                f.line,
            )
        })
        .collect();
    ensure!(
        codes
            == [
                (2, "drop_column", "destructive", 2),
                (3, "drop_table", "destructive", 3),
                (4, "blocking_index", "lock_hazard", 1)
            ],
        "{codes:?}"
    );
    ensure!(plan.findings[1].allowed && !plan.findings[0].allowed);
    ensure!(plan.tenants.iter().all(|t| t.blocked), "{plan:?}");

    // Without acceptance: every tenant fails before anything runs, the column stays.
    let refused = daemon.apply(up_to(4, false)).await?;
    ensure!(
        refused.finished().context("finished")?.failed == 2,
        "{refused:?}"
    );
    for t in refused.tenants() {
        let error = t.error.as_ref().context("error")?;
        ensure!(error.code == "blocked", "{error:?}");
        ensure!(
            error.message.contains("accept_data_loss"),
            "{}",
            error.message
        );
        ensure!(t.migrations_run == 0);
    }
    for i in 0..2 {
        ensure!(fleet.columns(i, "accounts").await?.contains("legacy"));
        ensure!(fleet.history(i).await?.len() == 1);
    }

    // With acceptance: it runs, and the column is gone.
    let accepted = daemon.apply(up_to(4, true)).await?;
    ensure!(
        accepted.finished().context("finished")?.succeeded == 2,
        "{accepted:?}"
    );
    for i in 0..2 {
        let columns = fleet.columns(i, "accounts").await?;
        ensure!(
            !columns.contains("legacy") && columns.contains("email"),
            "{columns:?}"
        );
        let versions: Vec<i64> = fleet.history(i).await?.iter().map(|h| h.0).collect();
        ensure!(versions == [1, 2, 3, 4], "{versions:?}");
    }
    daemon.stop().await?;
    for i in 0..2 {
        fleet
            .exec(
                i,
                "DROP TABLE accounts, avocet_migrations, avocet_migrations_log",
            )
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_allows_it_runs_without_acceptance() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (id int);")?;
    set.write(
        "0002_drop_a.up.sql",
        "-- avocet:allow-destructive\n-- a was never used\nDROP TABLE a;",
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        run.finished().context("finished")?.succeeded == 1,
        "{run:?}"
    );
    let tables = fleet.objects(0, "BASE TABLE").await?;
    ensure!(
        tables.contains("avocet_migrations") && !tables.contains("a"),
        "{tables:?}"
    );
    daemon.stop().await?;
    fleet
        .exec(0, "DROP TABLE avocet_migrations, avocet_migrations_log")
        .await
}

/// Lint you can tune: a backfill (`UPDATE` without `WHERE`) is a `data_rewrite` warning that
/// runs; a widening of a column the set created (`varchar(128)` to `varchar(1024)`) is no
/// narrowing; and a fleet's `[lint]` makes a code an error, or turns it off.
#[tokio::test(flavor = "multi_thread")]
async fn the_lint_tells_backfills_and_widenings_and_fleets_tune_it() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_events.up.sql",
        "CREATE TABLE events (id int PRIMARY KEY, kind varchar(128));",
    )?;
    set.write(
        "0002_widen.up.sql",
        "ALTER TABLE events ALTER COLUMN kind TYPE varchar(1024);",
    )?;
    set.write("0003_backfill.up.sql", "UPDATE events SET kind = 'x';")?;
    let plan_of = async |lint: &[(&str, avocet_daemon::model::LintSeverity)]| {
        let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
        let f = config
            .fleets
            .get_mut(avocet_tests::FLEET)
            .context("fleet")?;
        f.lint = lint.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect();
        let daemon = TestDaemon::start_with(config).await?;
        let plan = daemon.plan().await?;
        daemon.stop().await?;
        anyhow::Ok(plan)
    };
    use avocet_daemon::model::LintSeverity::{Error, Off};
    let plan = plan_of(&[]).await?;
    let found: Vec<(String, &str, &str, bool)> = plan
        .findings
        .iter()
        .map(|f| (f.version.text(), f.code.as_str(), f.id.as_str(), f.blocks))
        .collect();
    ensure!(
        found.contains(&("3".to_owned(), "update_without_where", "AV201", false)),
        "{found:?}"
    );
    ensure!(
        !found.iter().any(|f| f.1 == "narrowing_type"),
        "the widening is reported as a narrowing: {found:?}"
    );
    ensure!(
        !plan.tenants[0].blocked,
        "{:?}",
        plan.tenants[0].diagnostics
    );

    let strict = plan_of(&[("update_without_where", Error)]).await?;
    ensure!(
        strict.tenants[0].blocked,
        "[lint] update_without_where = error does not block"
    );
    let quiet = plan_of(&[("AV201", Off)]).await?;
    ensure!(
        !quiet
            .findings
            .iter()
            .any(|f| f.code == "update_without_where"),
        "{:?}",
        quiet.findings
    );
    Ok(())
}

/// `PlanRequest.set_only` (what `avocet apply --yes` asks first) answers the findings of
/// every migration of the set without reading a tenant: the fleet's one tenant is
/// unreachable here, and the answer comes anyway, with no tenant plans, no page and the
/// fleet's tenant count.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_only_plan_reads_no_tenant() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_accounts.up.sql",
        "CREATE TABLE accounts (id int PRIMARY KEY, legacy text);",
    )?;
    set.write(
        "0002_drop_legacy.up.sql",
        "ALTER TABLE accounts DROP COLUMN legacy;",
    )?;
    let daemon = unreachable_fleet(&fleet, &set).await?;
    let ask = |set_only| pb::PlanRequest {
        fleet: avocet_tests::FLEET.into(),
        set_only,
        ..Default::default()
    };
    let mut c = daemon.client();
    let whole = c.plan(ask(true)).await?;
    let found: Vec<(i64, &str, bool)> = whole
        .findings
        .iter()
        .map(|f| {
            (
                f.version.int().unwrap_or_default(),
                f.code.as_str(),
                f.blocks,
            )
        })
        .collect();
    ensure!(found == [(2, "drop_column", true)], "{found:?}");
    ensure!(
        whole.tenants.is_empty() && whole.scripts.is_empty(),
        "{whole:?}"
    );
    ensure!(whole.tenant_count == 1 && whole.next_page_token.is_empty());
    // The tenant plan reads it, and says it is unreachable.
    let read = c.plan(ask(false)).await?;
    let tenant = read.tenants.first().context("one tenant")?;
    ensure!(tenant.blocked && read.findings.is_empty(), "{read:?}");
    daemon.stop().await?;
    Ok(())
}

/// A daemon over `fleet`'s configuration with `set`, its one tenant moved to a port where
/// nothing listens.
async fn unreachable_fleet(fleet: &Fleet, set: &MigrationCopy) -> anyhow::Result<TestDaemon> {
    let mut config = TestDaemon::config(fleet, set.path(), Duration::from_secs(5))?;
    let test = config.fleets.get_mut("test").context("fleet test")?;
    test.tenants[0].dsn = "postgres://postgres@127.0.0.1:1/nowhere".into();
    TestDaemon::start_with(config).await
}

/// A fresh tenant may start from a Flyway baseline (`B2__…`): a set-only plan answers its
/// findings too, so `apply --yes` still stops before a baseline that destroys data.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_only_plan_counts_baselines() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("V1__Create_people.sql", "CREATE TABLE people (id int);")?;
    set.write("V2__Create_pets.sql", "CREATE TABLE pets (id int);")?;
    set.write(
        "B2__Baseline.sql",
        "CREATE TABLE people (id int);\nCREATE TABLE pets (id int);\nDROP TABLE scratch;\n",
    )?;
    let daemon = unreachable_fleet(&fleet, &set).await?;
    let whole = daemon
        .client()
        .plan(pb::PlanRequest {
            fleet: avocet_tests::FLEET.into(),
            set_only: true,
            ..Default::default()
        })
        .await?;
    let found: Vec<(&str, &str, bool)> = whole
        .findings
        .iter()
        .map(|f| (f.name.as_str(), f.code.as_str(), f.blocks))
        .collect();
    ensure!(found == [("Baseline", "drop_table", true)], "{found:?}");
    daemon.stop().await?;
    Ok(())
}
