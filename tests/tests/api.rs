//! Requests the API must refuse or handle specially: typed gRPC errors naming fleet, tenant
//! and version; dry runs; stop-at-first-failure; unreachable tenants; session settings;
//! schema-per-tenant fleets.

use std::time::Duration;

use anyhow::ensure;
use avocet_daemon::{DialectKind, Target, TenantLock};
use avocet_tests::{
    FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, only, pb, request, scenarios,
};
use tonic::Code;

fn code(e: &avocet_client::ClientError) -> Option<Code> {
    e.code()
}

/// Checks the `google.rpc.ErrorInfo` of `err`: its reason code (docs/errors.md) and each
/// `(key, value)` of what it names (`fleet`, `tenant`, `version`, `rollout`).
fn reason(
    err: &avocet_client::ClientError,
    expected: &str,
    names: &[(&str, &str)],
) -> anyhow::Result<()> {
    let r = err
        .rejection()
        .ok_or_else(|| anyhow::anyhow!("{err}: not a status"))?;
    ensure!(r.reason() == Some(expected), "{err}: expected {expected}");
    for &(key, value) in names {
        let got = match key {
            "fleet" => r.fleet(),
            "tenant" => r.tenant(),
            "version" => r.version(),
            "rollout" => r.rollout(),
            other => anyhow::bail!("no metadata key {other}"),
        };
        ensure!(
            got == Some(value),
            "{err}: {key} is {got:?}, expected {value}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_typed_errors_and_change_nothing() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let set = MigrationCopy::of(DialectKind::Sqlite)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(1)).await?;
    let mut client = daemon.client();

    let err = client
        .plan(pb::PlanRequest {
            fleet: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    ensure!(
        code(&err) == Some(Code::NotFound) && err.to_string().contains("nope"),
        "{err}"
    );
    reason(&err, "FLEET_NOT_FOUND", &[("fleet", "nope")])?;

    let err = client
        .apply(pb::ApplyRequest {
            selector: only(&["ghost"]),
            ..request()
        })
        .await
        .unwrap_err();
    ensure!(
        code(&err) == Some(Code::NotFound) && err.to_string().contains("ghost"),
        "{err}"
    );
    reason(
        &err,
        "TENANT_NOT_FOUND",
        &[("fleet", FLEET), ("tenant", "ghost")],
    )?;

    for (req, needle, why) in [
        (
            pb::ApplyRequest {
                target_version: Some(99.into()),
                ..request()
            },
            "version 99",
            "VERSION_NOT_FOUND",
        ),
        (
            pb::ApplyRequest {
                selector: Some(pb::TenantSelector {
                    tenant_ids: vec![],
                    labels: "shard in 1".into(),
                }),
                ..request()
            },
            "shard in 1",
            "INVALID_REQUEST",
        ),
        (
            pb::ApplyRequest {
                concurrency: 100_000,
                ..request()
            },
            "concurrency",
            "INVALID_STRATEGY",
        ),
        (
            pb::ApplyRequest::default(),
            "fleet is required",
            "MISSING_FIELD",
        ),
    ] {
        let err = client.apply(req).await.unwrap_err();
        ensure!(code(&err) == Some(Code::InvalidArgument), "{err}");
        ensure!(err.to_string().contains(needle), "{err}");
        reason(&err, why, &[])?;
    }
    let err = client
        .apply(pb::ApplyRequest {
            target_version: Some(99.into()),
            ..request()
        })
        .await
        .unwrap_err();
    reason(
        &err,
        "VERSION_NOT_FOUND",
        &[("fleet", FLEET), ("version", "99")],
    )?;
    let err = client
        .apply(pb::ApplyRequest {
            expected_set_digest: "0".repeat(64),
            ..request()
        })
        .await
        .unwrap_err();
    ensure!(code(&err) == Some(Code::FailedPrecondition), "{err}");
    reason(&err, "SET_CHANGED", &[("fleet", FLEET)])?;
    let none = "00000000-0000-4000-8000-000000000000";
    let err = client.rollout(none).await.unwrap_err();
    ensure!(code(&err) == Some(Code::NotFound), "{err}");
    reason(&err, "ROLLOUT_NOT_FOUND", &[("rollout", none)])?;
    let err = client
        .rollback(pb::RollbackRequest {
            fleet: FLEET.into(),
            target: Some(pb::rollback_request::Target::Steps(0)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    ensure!(code(&err) == Some(Code::InvalidArgument), "{err}");

    // A broken file in the set: every request on the fleet fails, naming the file.
    set.write(
        "0017_broken.up.sql",
        "INSERT INTO accounts (name) VALUES ('unterminated);",
    )?;
    let err = daemon.plan().await.unwrap_err();
    ensure!(code(&err) == Some(Code::FailedPrecondition), "{err}");
    ensure!(err.to_string().contains("0017_broken.up.sql"), "{err}");
    reason(&err, "SET_INVALID", &[("fleet", FLEET)])?;
    ensure!(client.apply(request()).await.is_err());
    for i in 0..2 {
        ensure!(
            fleet.objects(i, "BASE TABLE").await?.is_empty(),
            "tenant {i} was touched"
        );
    }

    std::fs::remove_file(set.path().join("0017_broken.up.sql"))?;

    // Repair: a version without a failed record, then a lock that does not come.
    let err = daemon.mark_applied("t00", 1).await.unwrap_err();
    ensure!(code(&err) == Some(Code::FailedPrecondition), "{err}");
    reason(
        &err,
        "NOTHING_TO_REPAIR",
        &[("fleet", FLEET), ("tenant", "t00"), ("version", "1")],
    )?;
    let held = TenantLock::acquire(
        DialectKind::Sqlite,
        Target {
            dsn: fleet.tenants[1].dsn.clone(),
            schema: None,
            history_table: "avocet_migrations".into(),
            session_init: vec![],
            connect_timeout: Duration::from_secs(5),
            text_versions: false,
        },
        Duration::from_secs(1),
    )
    .await?;
    let err = daemon.mark_applied("t01", 1).await.unwrap_err();
    ensure!(code(&err) == Some(Code::DeadlineExceeded), "{err}");
    ensure!(err.to_string().contains("t01"), "{err}");
    reason(&err, "LOCK_TIMEOUT", &[("fleet", FLEET), ("tenant", "t01")])?;
    held.release().await?;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_returns_the_plan_and_touches_nothing() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            dry_run: true,
            target_version: Some(5.into()),
            ..request()
        })
        .await?;
    for t in run.tenants() {
        ensure!(t.outcome == pb::TenantOutcome::Planned as i32, "{t:?}");
        let plan = t.plan.as_ref().expect("plan");
        let versions: Vec<i64> = plan
            .steps
            .iter()
            .map(|s| s.version.int().unwrap_or_default())
            .collect();
        ensure!(versions == [1, 2, 3, 4, 5], "{versions:?}");
        ensure!(
            plan.steps
                .iter()
                .all(|s| s.transactional && s.script_checksum.len() == 64)
        );
    }
    ensure!(run.migrations().count() == 0);
    for i in 0..2 {
        ensure!(
            fleet.objects(i, "BASE TABLE").await?.is_empty(),
            "dry run wrote to {i}"
        );
    }
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_on_first_failure_skips_the_tenants_not_yet_started() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(6).await?;
    fleet
        .exec(0, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
        .await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            concurrency: 1,
            stop_on_first_failure: true,
            ..request()
        })
        .await?;
    let summary = run.finished().expect("finished");
    ensure!(summary.failed == 1 && summary.skipped == 5, "{summary:?}");
    let t0 = run.tenant("t00").expect("t00");
    ensure!(
        t0.error
            .as_ref()
            .is_some_and(|e| e.version.int() == Some(1)),
        "{t0:?}"
    );
    for i in 1..6 {
        ensure!(
            fleet.objects(i, "BASE TABLE").await?.is_empty(),
            "tenant {i} ran"
        );
    }
    // Without the flag the failure stays with its tenant.
    let run = daemon.apply_all().await?;
    let summary = run.finished().expect("finished");
    ensure!(summary.failed == 1 && summary.succeeded == 5, "{summary:?}");
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_tenant_fails_alone() -> anyhow::Result<()> {
    let mut fleet = Fleet::postgres(2).await?;
    let mut down = fleet.tenants[1].clone();
    down.id = "down".into();
    down.dsn = "postgres://postgres:s3cret@127.0.0.1:1/nowhere".into();
    fleet.tenants.push(down);
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    let summary = run.finished().expect("finished");
    ensure!(summary.succeeded == 2 && summary.failed == 1, "{summary:?}");
    let e = run
        .tenant("down")
        .and_then(|t| t.error.clone())
        .expect("error");
    ensure!(
        e.code == "unreachable" && e.message.contains("down"),
        "{e:?}"
    );
    ensure!(!e.message.contains("s3cret"), "the DSN leaked: {e:?}");
    let status = daemon.status().await?;
    ensure!(
        status.unreachable == 1 && status.up_to_date == 2,
        "{status:?}"
    );
    let err = daemon.mark_applied("down", 1).await.unwrap_err();
    ensure!(code(&err) == Some(Code::Unavailable) && !err.to_string().contains("s3cret"));
    reason(
        &err,
        "TENANT_UNREACHABLE",
        &[("fleet", FLEET), ("tenant", "down")],
    )?;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_per_tenant_migrations_land_in_their_own_schema() -> anyhow::Result<()> {
    let fleet = Fleet::postgres_schemas(3).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(10)).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            concurrency: 3,
            ..request()
        })
        .await?;
    ensure!(run.finished().expect("finished").succeeded == 3);
    for i in 0..3 {
        scenarios::assert_latest_schema(&fleet, i).await?;
    }
    let public = fleet
        .scalar(
            0,
            "SELECT COUNT(*)::text FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await?;
    ensure!(
        public.as_deref() == Some("0"),
        "tables leaked into public: {public:?}"
    );
    // Rolling one tenant back leaves the others alone.
    let back = daemon
        .rollback_with(pb::RollbackRequest {
            fleet: FLEET.into(),
            selector: only(&["s01"]),
            target: Some(pb::rollback_request::Target::ToVersion(0.into())),
            accept_data_loss: true,
            ..Default::default()
        })
        .await?;
    ensure!(back.finished().expect("finished").migrations_run == 16);
    ensure!(
        fleet.objects(1, "BASE TABLE").await?.len() == 2,
        "only history tables remain"
    );
    scenarios::assert_latest_schema(&fleet, 0).await?;
    scenarios::assert_latest_schema(&fleet, 2).await?;
    daemon.stop().await
}

/// SQLite cannot change `PRAGMA foreign_keys` inside a transaction, and a table rebuild with
/// foreign keys on cascades deletes into child tables. `session_init` turns them off on
/// every connection the engine opens, so the rebuild keeps the children.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_session_init_keeps_children_through_a_table_rebuild() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let write = |name: &str, sql: &str| std::fs::write(dir.path().join(name), sql);
    write(
        "1_parents.sql",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);\n\
         CREATE TABLE child (id INTEGER PRIMARY KEY, \
           parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE);\n\
         INSERT INTO parent VALUES (1, 'a');\nINSERT INTO child VALUES (10, 1);\n",
    )?;
    write(
        "2_rebuild_parent.sql",
        "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');\n\
         INSERT INTO parent_new SELECT id, name FROM parent;\n\
         DROP TABLE parent;\n\
         ALTER TABLE parent_new RENAME TO parent;\n",
    )?;
    for (session_init, children) in [
        (vec![], "0"),
        (vec!["PRAGMA foreign_keys = OFF".into()], "1"),
    ] {
        let fleet = Fleet::sqlite(1).await?;
        let mut config = TestDaemon::config(&fleet, dir.path(), Duration::from_secs(5))?;
        config.fleets.get_mut(FLEET).expect("fleet").session_init = session_init.clone();
        let daemon = TestDaemon::start_with(config).await?;
        let run = daemon.apply_all().await?;
        ensure!(run.finished().expect("finished").failed == 0);
        let left = fleet
            .scalar(0, "SELECT CAST(COUNT(*) AS TEXT) FROM child")
            .await?;
        ensure!(
            left.as_deref() == Some(children),
            "session_init {session_init:?}: {left:?} children left"
        );
        daemon.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_connections_use_utf8mb4() -> anyhow::Result<()> {
    let fleet = Fleet::mysql(1).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("1_emoji.up.sql"),
        "CREATE TABLE birds (name VARCHAR(20)) DEFAULT CHARSET = utf8mb4;\n\
         INSERT INTO birds VALUES ('avocet 🐦');\n",
    )?;
    std::fs::write(dir.path().join("1_emoji.down.sql"), "DROP TABLE birds;\n")?;
    let daemon = TestDaemon::start(&fleet, dir.path(), Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        run.finished().expect("finished").failed == 0,
        "{:?}",
        run.events
    );
    let name = fleet.scalar(0, "SELECT name FROM birds").await?;
    ensure!(name.as_deref() == Some("avocet 🐦"), "{name:?}");
    daemon.stop().await
}
