//! Flyway's repeatable migrations (`R__<description>.sql`) on every dialect.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb, request};

use super::{on_every_dialect, scripts, started, versions_of};

/// Flyway's repeatable `R__People_views.sql` beside `V1`/`V2`: it runs after them, not again
/// while unchanged, again (alone) once edited; a rollback never runs it, and a re-applied
/// version does not bring it back.
async fn repeatable(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("Flyway repeatable on {}", fleet.dialect);
    let s = scripts(fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write("V1__Create_people.sql", s.people.0)?;
    set.write("V2__Create_pets.sql", s.pets.0)?;
    set.write("U2__Create_pets.sql", s.pets.1)?;
    let views =
        "DROP VIEW IF EXISTS people_ids;\nCREATE VIEW people_ids AS SELECT id FROM people;\n";
    set.write("R__People_views.sql", views)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut client = daemon.client();
    let key = "R__People_views";
    // What ran on t00, after checking every tenant ends at version 2 (never the repeatable).
    let apply = || async {
        let run = daemon.apply_all().await?;
        let failed = run.finished().context("finished")?.failed;
        ensure!(failed == 0, "{context}: {run:?}");
        let ends = run.events.iter().filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::TenantFinished(t)) => Some(t.current_version.text()),
            _ => None,
        });
        ensure!(
            ends.clone().count() == 2 && ends.clone().all(|v| v == "2"),
            "{context}: {run:?}"
        );
        anyhow::Ok(started(&run, "t00"))
    };

    ensure!(apply().await? == ["1", "2", key], "{context}: first apply");
    for i in 0..2 {
        let stored = versions_of(&fleet, i).await?;
        ensure!(
            stored == ["1", "2", key],
            "{context}: the history holds {stored:?}"
        );
        ensure!(fleet.objects(i, "VIEW").await?.contains("people_ids"));
    }
    let history = client.history(FLEET, "t00").await?;
    ensure!(
        history.current_version.text() == "2",
        "{context}: a repeatable is never the current version: {history:?}"
    );
    let to_repeatable = client
        .plan(pb::PlanRequest {
            fleet: FLEET.into(),
            target_version: Some(pb::Version::from_shown(key)),
            ..Default::default()
        })
        .await;
    ensure!(
        matches!(&to_repeatable, Err(e) if e.code() == Some(tonic::Code::InvalidArgument)),
        "{context}: a repeatable is no target: {to_repeatable:?}"
    );
    let back_to_repeatable = daemon
        .rollback(pb::rollback_request::Target::ToVersion(
            pb::Version::from_shown(key),
        ))
        .await;
    ensure!(
        matches!(&back_to_repeatable, Err(e) if e.code() == Some(tonic::Code::InvalidArgument)
            && e.to_string().contains("never rolled back")),
        "{context}: a repeatable is no rollback target: {back_to_repeatable:?}"
    );
    let unchanged = apply().await?;
    ensure!(
        unchanged.is_empty(),
        "{context}: unchanged, yet {unchanged:?} ran"
    );

    let edited = format!(
        "{views}DROP VIEW IF EXISTS people_count;\nCREATE VIEW people_count AS SELECT count(*) AS n FROM people;\n"
    );
    set.write("R__People_views.sql", &edited)?;
    let plan = client
        .plan(pb::PlanRequest {
            fleet: FLEET.into(),
            ..Default::default()
        })
        .await?;
    let t00 = &plan.tenants[0];
    let steps: Vec<String> = t00.steps.iter().map(|s| s.version.text()).collect();
    ensure!(steps == [key], "{context}: plan after the edit: {steps:?}");
    ensure!(
        t00.diagnostics.is_empty(),
        "{context}: {:?}",
        t00.diagnostics
    );
    let history = client.history(FLEET, "t00").await?;
    let views = history.records.iter().find(|r| r.version.text() == key);
    ensure!(
        history.pending_versions == [pb::Version::from_shown(key)]
            && views.is_some_and(|r| !r.drift),
        "{context}: an edited repeatable is pending, not drift: {history:?}"
    );
    // The last-known state a dry run stores says so too.
    let dry = daemon
        .apply(pb::ApplyRequest {
            dry_run: true,
            ..request()
        })
        .await?;
    ensure!(dry.finished().is_some(), "{context}: {dry:?}");
    let known = daemon.known_status().await?;
    let pending: Vec<u32> = known.tenants.iter().map(|t| t.pending).collect();
    ensure!(
        pending == [1, 1] && known.pending == 2,
        "{context}: Status after a dry run: {known:?}"
    );
    ensure!(apply().await? == [key], "{context}: after the edit");
    for i in 0..2 {
        ensure!(
            fleet.objects(i, "VIEW").await?.contains("people_count"),
            "{context}"
        );
    }

    let back = daemon
        .rollback(pb::rollback_request::Target::ToVersion(
            pb::Version::from_shown("1"),
        ))
        .await?;
    ensure!(started(&back, "t00") == ["2"], "{context}: {back:?}");
    for i in 0..2 {
        ensure!(!fleet.objects(i, "BASE TABLE").await?.contains("pets"));
        ensure!(fleet.objects(i, "VIEW").await?.contains("people_count"));
    }
    ensure!(apply().await? == ["2"], "{context}: re-applying 2");
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn flyway_repeatable_migrations() -> anyhow::Result<()> {
    on_every_dialect(repeatable).await
}

/// Repeatables' keys as Flyway reads them: run in the order of their descriptions with
/// underscores read as spaces (`Customer view` before `CustomerAudit`, which reads it), and
/// two that differ only by an accent are two rows, also in MySQL.
async fn keys(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("repeatable keys on {}", fleet.dialect);
    let set = MigrationCopy::empty()?;
    set.write("V1__Create_people.sql", scripts(fleet.dialect).people.0)?;
    set.write(
        "R__CustomerAudit.sql",
        "CREATE VIEW audit_ids AS SELECT id FROM customer_ids;\n",
    )?;
    set.write(
        "R__Customer_view.sql",
        "CREATE VIEW customer_ids AS SELECT id FROM people;\n",
    )?;
    set.write("R__cafe.sql", "CREATE TABLE cafe_ran (id int);\n")?;
    set.write("R__café.sql", "CREATE TABLE cafe_accent_ran (id int);\n")?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let expected = [
        "1",
        "R__Customer_view",
        "R__CustomerAudit",
        "R__cafe",
        "R__café",
    ];
    let run = daemon.apply_all().await?;
    ensure!(
        run.finished().is_some_and(|f| f.failed == 0),
        "{context}: {run:?}"
    );
    ensure!(started(&run, "t00") == expected, "{context}: {run:?}");
    let mut stored = versions_of(&fleet, 0).await?;
    stored.sort();
    let mut sorted = expected.map(String::from).to_vec();
    sorted.sort();
    ensure!(stored == sorted, "{context}: the history holds {stored:?}");
    let again = daemon.apply_all().await?;
    ensure!(
        started(&again, "t00").is_empty(),
        "{context}: nothing changed, yet {again:?}"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn flyway_repeatables_keep_flyways_order_and_accents() -> anyhow::Result<()> {
    on_every_dialect(keys).await
}
