//! A tenant's last-known state is classified against the set of now every time it is shown
//! (issue 24, items 1-3): `Status` and the `/metrics` gauges agree after a migration is
//! added, after a failed rollout, and on tenants never read; dry runs are stored as such
//! (item 13). Real SQLite and PostgreSQL tenants, a real control store.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_daemon::DialectKind;
use avocet_tests::{
    FLEET, Fleet, MigrationCopy, Scrape, TestDaemon, VersionField, only, pb, request,
    scenarios::LATEST, scrape,
};
use prometheus_parse::Value;

/// The one value of gauge `metric` for the test fleet.
fn gauge(s: &Scrape, metric: &str) -> anyhow::Result<f64> {
    let found: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric && x.labels.get("fleet") == Some(FLEET))
        .filter_map(|x| match x.value {
            Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    ensure!(found.len() == 1, "{metric}: {found:?}");
    Ok(found[0])
}

/// The summary counts of `s`: up to date, pending, failed, unreachable, never read.
fn counts(s: &pb::StatusResponse) -> [u32; 5] {
    [s.up_to_date, s.pending, s.failed, s.unreachable, s.unknown]
}

/// The gauges as `Status` counts them: up to date (the rest), behind, failed,
/// unreachable, unknown.
async fn gauges(daemon: &TestDaemon) -> anyhow::Result<[u32; 5]> {
    let s = scrape(daemon.admin).await?;
    let n = |m: &str| gauge(&s, m).map(|v| v as u32);
    let (tenants, behind, failed, unreachable, unknown) = (
        n("avocet_fleet_tenants")?,
        n("avocet_fleet_tenants_behind")?,
        n("avocet_fleet_tenants_failed")?,
        n("avocet_fleet_tenants_unreachable")?,
        n("avocet_fleet_tenants_unknown")?,
    );
    let up_to_date = tenants - behind - failed - unreachable - unknown;
    Ok([up_to_date, behind, failed, unreachable, unknown])
}

/// `Status` of `ids` only, from last-known state (the path of a selection, not the whole
/// fleet's aggregate).
async fn status_of(daemon: &TestDaemon, ids: &[&str]) -> anyhow::Result<pb::StatusResponse> {
    let req = pb::StatusRequest {
        fleet: FLEET.into(),
        selector: only(ids),
        page_size: 100,
        ..Default::default()
    };
    Ok(daemon.client().status(req).await?)
}

const NEXT: &str = "0017_add_projects_owner.up.sql";

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_added_after_a_refresh_is_pending_in_status_and_in_the_metrics()
-> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let set = MigrationCopy::of(DialectKind::Sqlite)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    daemon.apply_all().await?;
    let fresh = daemon.status().await?;
    ensure!(counts(&fresh) == [3, 0, 0, 0, 0], "{fresh:?}");
    ensure!(gauges(&daemon).await? == [3, 0, 0, 0, 0]);

    // A 17th migration while the daemon runs: every tenant is at 16 with one pending.
    set.write(NEXT, "ALTER TABLE projects ADD COLUMN owner TEXT;")?;
    let known = daemon.known_status().await?;
    ensure!(known.latest_version.int() == Some(LATEST + 1), "{known:?}");
    ensure!(counts(&known) == [0, 3, 0, 0, 0], "{known:?}");
    for t in &known.tenants {
        ensure!(
            t.current_version.int() == Some(LATEST) && t.pending == 1,
            "{t:?}"
        );
    }
    ensure!(
        gauges(&daemon).await? == counts(&known),
        "the metrics agree with Status"
    );
    let some = status_of(&daemon, &["t00", "t01"]).await?;
    ensure!(counts(&some) == [0, 2, 0, 0, 0], "{some:?}");
    ensure!(some.tenants.iter().all(|t| t.pending == 1), "{some:?}");

    // Applied, everything agrees again.
    daemon.apply_all().await?;
    let known = daemon.known_status().await?;
    ensure!(counts(&known) == [3, 0, 0, 0, 0], "{known:?}");
    ensure!(gauges(&daemon).await? == counts(&known));
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_failed_rollout_on_postgres_the_tenants_it_left_are_pending() -> anyhow::Result<()>
{
    let fleet = Fleet::postgres(3).await?;
    let set = MigrationCopy::of(DialectKind::Postgres)?;
    // A PostgreSQL control store too: its aggregate groups the states.
    let store = Fleet::postgres(1).await?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(10))?;
    config.control_store = store.tenants[0].dsn.clone();
    let daemon = TestDaemon::start_with(config).await?;
    daemon.apply_all().await?;
    ensure!(counts(&daemon.status().await?) == [3, 0, 0, 0, 0]);

    // Version 17 fails on t00 (its column is already there); the rollout of t00 alone
    // fails, t01 and t02 are left at 16 with 17 pending.
    set.write(NEXT, "ALTER TABLE projects ADD COLUMN owner TEXT;")?;
    fleet
        .exec(0, "ALTER TABLE projects ADD COLUMN owner TEXT")
        .await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t00"]),
            ..request()
        })
        .await?;
    ensure!(run.finished().context("finished")?.failed == 1);
    let state = daemon
        .client()
        .rollout(run.id().context("id")?)
        .await?
        .state;
    ensure!(state == pb::RolloutState::Failed as i32, "{state}");

    let known = daemon.known_status().await?;
    ensure!(known.latest_version.int() == Some(LATEST + 1), "{known:?}");
    ensure!(counts(&known) == [0, 2, 1, 0, 0], "{known:?}");
    for t in &known.tenants {
        ensure!(
            t.current_version.int() == Some(LATEST) && t.pending == 1,
            "{t:?}"
        );
        let failed = t.tenant == "t00";
        ensure!(
            t.failed_versions == [pb::Version::number(LATEST + 1)] || !failed,
            "{t:?}"
        );
    }
    ensure!(
        gauges(&daemon).await? == counts(&known),
        "the metrics agree with Status"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_read_have_the_whole_set_pending() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let known = daemon.known_status().await?;
    ensure!(counts(&known) == [0, 0, 0, 0, 3], "{known:?}");
    ensure!(known.tenants.len() == 3);
    for t in &known.tenants {
        ensure!(
            t.pending == LATEST as u32 && t.current_version.is_none() && t.read_at_unix_ms == 0,
            "{t:?}"
        );
    }
    let some = status_of(&daemon, &["t01"]).await?;
    ensure!(some.tenants[0].pending == LATEST as u32, "{some:?}");
    ensure!(gauges(&daemon).await? == counts(&known));
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_is_stored_as_one() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}/control.db", dir.path().display());
    let mut config = TestDaemon::config(
        &fleet,
        &avocet_tests::sample_dir(DialectKind::Sqlite),
        Duration::from_secs(5),
    )?;
    config.control_store = format!("{store}?mode=rwc");
    let daemon = TestDaemon::start_with(config).await?;
    let dry = daemon
        .apply(pb::ApplyRequest {
            dry_run: true,
            ..request()
        })
        .await?;
    let dry_id = dry.id().context("dry run id")?.to_owned();
    let real = daemon.apply_all().await?;
    let real_id = real.id().context("id")?.to_owned();

    let mut client = daemon.client();
    ensure!(client.rollout(&dry_id).await?.dry_run);
    ensure!(!client.rollout(&real_id).await?.dry_run);
    let listed = client
        .list_rollouts(pb::ListRolloutsRequest {
            fleet: FLEET.into(),
            ..Default::default()
        })
        .await?;
    let marks: Vec<(String, bool)> = listed
        .rollouts
        .iter()
        .map(|r| (r.id.clone(), r.dry_run))
        .collect();
    ensure!(marks.contains(&(dry_id.clone(), true)), "{marks:?}");
    ensure!(marks.contains(&(real_id.clone(), false)), "{marks:?}");
    // The rollouts gauge counts the real one only.
    let scrape = avocet_tests::scrape(daemon.admin).await?;
    let succeeded: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "avocet_rollouts"
                && s.labels.get("fleet") == Some(FLEET)
                && s.labels.get("state") == Some("succeeded")
        })
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .sum();
    ensure!(succeeded == 1.0, "avocet_rollouts succeeded: {succeeded}");

    // The store says it in a column of its own, not only inside the spec's JSON.
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&store).await?;
    let rows = sqlx::query("SELECT id, dry_run FROM rollouts ORDER BY created_at")
        .fetch_all(&mut conn)
        .await?;
    let stored: Vec<(String, i64)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    ensure!(stored == [(dry_id, 1), (real_id, 0)], "{stored:?}");
    daemon.stop().await
}

/// `ListTenants`' state of each tenant, by id.
async fn listed(daemon: &TestDaemon) -> anyhow::Result<Vec<(String, String, u32)>> {
    let resp = daemon
        .client()
        .list_tenants(pb::ListTenantsRequest {
            fleet: FLEET.into(),
            selector: None,
        })
        .await?;
    Ok(resp
        .tenants
        .into_iter()
        .map(|t| (t.id, t.state, t.pending))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_tenants_classifies_as_status_does_a_blocked_tenant_included() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let set = MigrationCopy::of(DialectKind::Sqlite)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let never = listed(&daemon).await?;
    ensure!(
        never
            .iter()
            .all(|(_, s, n)| s == "never read" && *n == LATEST as u32),
        "{never:?}"
    );
    daemon.apply_all().await?;
    // 17 runs outside a transaction and fails at its second statement on t00 (its table is
    // there): a partial `failed` record, which blocks t00 until repaired; t01 applies it;
    // t02 is not run.
    set.write(
        NEXT,
        "-- avocet:no-transaction\nCREATE TABLE owners (id INTEGER);\nCREATE TABLE taken (id INTEGER);\n",
    )?;
    fleet.exec(0, "CREATE TABLE taken (id INTEGER)").await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t00", "t01"]),
            ..request()
        })
        .await?;
    let end = run.finished().context("finished")?;
    ensure!(end.failed == 1 && end.succeeded == 1, "{end:?}");
    let expected = [
        ("t00".to_owned(), "blocked".to_owned(), 1),
        ("t01".to_owned(), "up to date".to_owned(), 0),
        ("t02".to_owned(), "pending".to_owned(), 1),
    ];
    ensure!(
        listed(&daemon).await? == expected,
        "{:?}",
        listed(&daemon).await?
    );
    let known = daemon.known_status().await?;
    ensure!(counts(&known) == [1, 1, 1, 0, 0], "{known:?}");
    ensure!(gauges(&daemon).await? == counts(&known));
    // Read afresh, the same.
    let fresh = daemon.status().await?;
    ensure!(counts(&fresh) == [1, 1, 1, 0, 0], "{fresh:?}");
    ensure!(listed(&daemon).await? == expected);
    daemon.stop().await
}
