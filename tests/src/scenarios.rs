//! The end-to-end scenarios, written once and run against each dialect by `tests/*.rs`.

use std::time::{Duration, Instant};

use anyhow::ensure;
use avocet_daemon::{DialectKind, Target, TenantLock};

use crate::{Fleet, MigrationCopy, TestDaemon, VersionField, only, pb, request};

/// The sample sets' latest version.
pub const LATEST: i64 = 16;

const TABLES: [&str; 8] = [
    "accounts",
    "users",
    "projects",
    "project_members",
    "invoices",
    "invoice_lines",
    "api_keys",
    "audit_events",
];

fn outcome(t: &pb::TenantFinished) -> pb::TenantOutcome {
    pb::TenantOutcome::try_from(t.outcome).unwrap_or_default()
}

/// Checks tenant `i` by introspection: every table, the view, the trigger, the
/// non-transactional index, the added column and the backfilled data of the sample set.
pub async fn assert_latest_schema(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    let tables = fleet.objects(i, "BASE TABLE").await?;
    for t in TABLES
        .iter()
        .chain(&["avocet_migrations", "avocet_migrations_log"])
    {
        ensure!(
            tables.contains(*t),
            "tenant {i}: table {t} missing from {tables:?}"
        );
    }
    let views = fleet.objects(i, "VIEW").await?;
    ensure!(
        views.contains("account_revenue"),
        "tenant {i}: views {views:?}"
    );
    let triggers = fleet.objects(i, "trigger").await?;
    ensure!(
        triggers.contains("projects_touch_updated_at"),
        "tenant {i}: triggers {triggers:?}"
    );
    let indexes = fleet.objects(i, "index").await?;
    ensure!(
        indexes.contains("invoices_account_created_idx"),
        "tenant {i}: indexes {indexes:?}"
    );
    if fleet.dialect == DialectKind::Postgres {
        let functions = fleet.objects(i, "function").await?;
        ensure!(
            functions.contains("set_updated_at"),
            "tenant {i}: functions {functions:?}"
        );
        let valid = fleet
            .scalar(
                i,
                "SELECT i.indisvalid::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE c.relname = 'invoices_account_created_idx'",
            )
            .await?;
        ensure!(
            valid.as_deref() == Some("true"),
            "tenant {i}: index not valid"
        );
    }
    ensure!(fleet.columns(i, "users").await?.contains("display_name"));
    ensure!(fleet.columns(i, "projects").await?.contains("archived_at"));
    let name = fleet
        .scalar(i, "SELECT display_name FROM users WHERE email LIKE 'ada.%'")
        .await?;
    ensure!(
        name.as_deref() == Some("ada.lovelace"),
        "tenant {i}: backfill gave {name:?}"
    );
    let history = fleet.history(i).await?;
    ensure!(
        history.len() == LATEST as usize,
        "tenant {i}: history {history:?}"
    );
    ensure!(
        history.iter().all(|(_, s, _)| s == "applied"),
        "tenant {i}: {history:?}"
    );
    Ok(())
}

/// Apply all; apply again (nothing runs); roll back two and check the schema; re-apply.
pub async fn full_cycle(fleet: Fleet) -> anyhow::Result<()> {
    let n = fleet.tenants.len();
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(30)).await?;

    let first = daemon.apply_all().await?;
    let summary = first.finished().expect("rollout finished").clone();
    ensure!(
        summary.succeeded as usize == n && summary.failed == 0,
        "{summary:?}"
    );
    ensure!(
        summary.migrations_run as usize == n * LATEST as usize,
        "{summary:?}"
    );
    let started = first.events.iter().find_map(|e| match &e.kind {
        Some(pb::rollout_event::Kind::RolloutStarted(s)) => Some(s.tenant_count),
        _ => None,
    });
    ensure!(
        started == Some(n as u32),
        "rollout started with {started:?}"
    );
    let seqs: Vec<u64> = first.events.iter().map(|e| e.seq).collect();
    ensure!(
        seqs == (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gaps in {seqs:?}"
    );
    for i in 0..n {
        assert_latest_schema(&fleet, i).await?;
    }

    let status = daemon.status().await?;
    ensure!(
        status.up_to_date as usize == n && status.pending == 0,
        "{status:?}"
    );
    ensure!(
        status.versions
            == [pb::VersionCount {
                version: Some(LATEST.into()),
                tenants: n as u32
            }],
        "{:?}",
        status.versions
    );

    let again = daemon.apply_all().await?;
    let summary = again.finished().expect("finished");
    ensure!(
        summary.migrations_run == 0 && summary.succeeded as usize == n,
        "{summary:?}"
    );

    let back = daemon
        .rollback(pb::rollback_request::Target::Steps(2))
        .await?;
    let summary = back.finished().expect("finished");
    ensure!(
        summary.migrations_run as usize == 2 * n && summary.failed == 0,
        "{summary:?}"
    );
    for t in back.tenants() {
        ensure!(t.current_version.int() == Some(LATEST - 2), "{t:?}");
    }
    for i in 0..n {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            !tables.contains("audit_events"),
            "tenant {i}: v15 not undone"
        );
        ensure!(!fleet.columns(i, "projects").await?.contains("archived_at"));
        let history = fleet.history(i).await?;
        let rolled: Vec<i64> = history
            .iter()
            .filter(|(_, s, _)| s == "rolled_back")
            .map(|(v, _, _)| *v)
            .collect();
        ensure!(rolled == [15, 16], "tenant {i}: {history:?}");
        ensure!(fleet.log_count(i, 16, "rolled_back").await? == 1);
    }
    let verify = daemon.verify().await?;
    ensure!(
        verify.tenants.iter().all(|t| t.ok && t.pending == 2),
        "{verify:?}"
    );

    let re = daemon.apply_all().await?;
    ensure!(re.finished().expect("finished").migrations_run as usize == 2 * n);
    for i in 0..n {
        assert_latest_schema(&fleet, i).await?;
        ensure!(fleet.log_count(i, 16, "applied").await? == 2, "tenant {i}");
    }
    daemon.stop().await
}

/// An edited applied file is reported by Verify and Plan and blocks Apply; CRLF line
/// endings and a BOM are not drift.
pub async fn drift(fleet: Fleet) -> anyhow::Result<()> {
    let set = MigrationCopy::of(fleet.dialect)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(30)).await?;
    let first = daemon.apply_all().await?;
    ensure!(first.finished().expect("finished").failed == 0);

    let third = set.up_file("0003_")?;
    let original = set.read(&third)?;
    set.write(
        &third,
        &format!("{original}\nCREATE INDEX projects_name_idx ON projects (name);\n"),
    )?;
    let fourth = set.up_file("0004_")?;
    let crlf = format!("\u{feff}{}", set.read(&fourth)?.replace('\n', "\r\n"));
    set.write(&fourth, &crlf)?;

    let verify = daemon.verify().await?;
    for t in &verify.tenants {
        ensure!(!t.ok, "{t:?}");
        let codes: Vec<(&str, Option<i64>)> = t
            .diagnostics
            .iter()
            .map(|d| (d.code.as_str(), d.version.int()))
            .collect();
        ensure!(codes == [("checksum_mismatch", Some(3))], "{codes:?}");
    }
    let plan = daemon.plan().await?;
    ensure!(plan.tenants.iter().all(|t| t.blocked), "{plan:?}");
    let blocked = daemon.apply_all().await?;
    for t in blocked.tenants() {
        let e = t.error.as_ref().expect("error");
        ensure!(e.code == "blocked" && e.version.int() == Some(3), "{e:?}");
        ensure!(
            e.message.contains(&t.tenant) && e.message.contains("version 3"),
            "{e:?}"
        );
    }

    set.write(&third, &original)?;
    let verify = daemon.verify().await?;
    ensure!(verify.tenants.iter().all(|t| t.ok), "{verify:?}");
    daemon.stop().await
}

/// Version 17 fails on its second statement on tenant 0 only; the others finish. On
/// PostgreSQL and SQLite tenant 0 keeps no trace but a `failed` record and the retry works
/// once the cause is gone; on MySQL the record is `failed` with `statements_done = 1`, the
/// tenant is blocked until repaired.
pub async fn failing_migration(fleet: Fleet) -> anyhow::Result<()> {
    let set = MigrationCopy::of(fleet.dialect)?;
    set.write(
        "0017_add_feature_flags.up.sql",
        "CREATE TABLE feature_flags (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL);\n\
         CREATE TABLE legacy_marker (id INTEGER PRIMARY KEY);\n",
    )?;
    set.write(
        "0017_add_feature_flags.down.sql",
        "DROP TABLE legacy_marker;\nDROP TABLE feature_flags;\n",
    )?;
    fleet
        .exec(0, "CREATE TABLE legacy_marker (id INTEGER PRIMARY KEY)")
        .await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(30)).await?;

    let run = daemon.apply_all().await?;
    let summary = run.finished().expect("finished");
    ensure!(summary.failed == 1 && summary.succeeded as usize == fleet.tenants.len() - 1);
    let t0 = run.tenant("t00").expect("t00 finished");
    ensure!(outcome(t0) == pb::TenantOutcome::Failed);
    let e = t0.error.as_ref().expect("error");
    ensure!(
        e.code == "migration_failed" && e.version.int() == Some(17),
        "{e:?}"
    );
    ensure!(
        e.message.contains("t00") && e.message.contains("version 17"),
        "{e:?}"
    );
    ensure!(t0.current_version.int() == Some(LATEST), "{t0:?}");
    for i in 1..fleet.tenants.len() {
        ensure!(
            fleet
                .objects(i, "BASE TABLE")
                .await?
                .contains("feature_flags")
        );
        ensure!(fleet.history(i).await?.last() == Some(&(17, "applied".into(), 2)));
    }
    let history = fleet.history(0).await?;
    let tables = fleet.objects(0, "BASE TABLE").await?;
    if fleet.dialect.transactional_ddl() {
        ensure!(!tables.contains("feature_flags"), "v17 left a table behind");
        ensure!(
            history.last() == Some(&(17, "failed".into(), 0)),
            "{history:?}"
        );
        fleet.exec(0, "DROP TABLE legacy_marker").await?;
        let retry = daemon.apply_all().await?;
        let t0 = retry.tenant("t00").expect("t00");
        ensure!(outcome(t0) == pb::TenantOutcome::Succeeded && t0.migrations_run == 1);
    } else {
        ensure!(tables.contains("feature_flags"), "MySQL DDL auto-commits");
        ensure!(
            history.last() == Some(&(17, "failed".into(), 1)),
            "{history:?}"
        );
        let plan = daemon.plan().await?;
        let p0 = &plan.tenants[0];
        ensure!(
            p0.blocked && p0.diagnostics[0].code == "partially_applied",
            "{p0:?}"
        );
        // The operator finishes the migration by hand, then records it.
        fleet.exec(0, "DROP TABLE legacy_marker").await?;
        fleet
            .exec(0, "CREATE TABLE legacy_marker (id INTEGER PRIMARY KEY)")
            .await?;
        let repaired = daemon.mark_applied("t00", 17).await?;
        ensure!(repaired.previous_status == "failed");
        ensure!(fleet.history(0).await?.last().map(|h| h.1.as_str()) == Some("applied"));
    }
    let verify = daemon.verify().await?;
    ensure!(
        verify.tenants.iter().all(|t| t.ok && t.pending == 0),
        "{verify:?}"
    );
    daemon.stop().await
}

/// Two applies started together on the same tenants apply each migration exactly once.
pub async fn concurrent_applies(fleet: Fleet) -> anyhow::Result<()> {
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(60)).await?;
    let (ra, rb) = tokio::join!(daemon.apply_all(), daemon.apply_all());
    let (ra, rb) = (ra?, rb?);
    let (fa, fb) = (ra.finished().expect("a"), rb.finished().expect("b"));
    ensure!(fa.failed == 0 && fb.failed == 0, "{fa:?} {fb:?}");
    let n = fleet.tenants.len();
    ensure!(
        (fa.migrations_run + fb.migrations_run) as usize == n * LATEST as usize,
        "{fa:?} {fb:?}"
    );
    for i in 0..n {
        for v in 1..=LATEST {
            ensure!(
                fleet.log_count(i, v, "applied").await? == 1,
                "tenant {i} v{v}"
            );
        }
        assert_latest_schema(&fleet, i).await?;
    }
    daemon.stop().await
}

/// A tenant lock held by another session makes apply fail with `lock_timeout` after the
/// configured timeout, touching nothing; once released, apply succeeds.
pub async fn lock_timeout(fleet: Fleet) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(1500);
    let daemon = TestDaemon::sample(&fleet, timeout).await?;
    let held = TenantLock::acquire(
        fleet.dialect,
        Target {
            dsn: fleet.tenants[0].dsn.clone(),
            schema: None,
            history_table: "avocet_migrations".into(),
            session_init: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            text_versions: false,
        },
        Duration::from_secs(5),
    )
    .await?;

    let clock = Instant::now();
    let run = daemon
        .apply(pb::ApplyRequest {
            selector: only(&["t00"]),
            ..request()
        })
        .await?;
    let waited = clock.elapsed();
    let t0 = run.tenant("t00").expect("t00");
    let e = t0.error.as_ref().expect("error");
    ensure!(e.code == "lock_timeout", "{e:?}");
    ensure!(e.message.contains("not acquired within"), "{e:?}");
    ensure!(
        waited >= timeout,
        "failed after {waited:?}, before the timeout"
    );
    ensure!(
        !fleet.objects(0, "BASE TABLE").await?.contains("accounts"),
        "apply ran without the lock"
    );

    held.release().await?;
    let run = daemon.apply_all().await?;
    ensure!(run.finished().expect("finished").failed == 0);
    assert_latest_schema(&fleet, 0).await?;
    daemon.stop().await
}

/// Every tenant has every version 1..=`versions` applied exactly once (history and log
/// rows), the `tables`, and no `running` row.
///
/// # Errors
/// Naming the first tenant that is not so.
pub async fn every_tenant_done(
    fleet: &Fleet,
    versions: i64,
    tables: &[&str],
) -> anyhow::Result<()> {
    for i in 0..fleet.tenants.len() {
        let history = fleet.history(i).await?;
        ensure!(
            history.len() == versions as usize && history.iter().all(|(_, s, _)| s == "applied"),
            "tenant {i}: {history:?}"
        );
        for v in 1..=versions {
            let n = fleet.log_count(i, v, "applied").await?;
            ensure!(n == 1, "tenant {i}: version {v} applied {n} times");
        }
        let objects = fleet.objects(i, "BASE TABLE").await?;
        for t in tables {
            ensure!(
                objects.contains(*t),
                "tenant {i}: {t} missing from {objects:?}"
            );
        }
    }
    Ok(())
}
