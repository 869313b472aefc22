//! Pooled sessions: one session serves a PostgreSQL tenant's whole apply and is reset between
//! migrations, MySQL migrations get sessions of their own, nothing a script does to its
//! session reaches the next migration (of its run or of the next run on the same session),
//! the history writes or another tenant, and the
//! daemon never opens more server connections than its budgets allow.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb, request};
use tokio::sync::watch;

fn finished(run: &avocet_client::RolloutRecord) -> anyhow::Result<pb::RolloutFinished> {
    run.finished().cloned().context("rollout finished")
}

/// Migration 1 changes its session every way a script can; migration 2 records what its own
/// session looks like. Both record their backend's pid.
const LEAKY_SET: [(&str, &str); 3] = [
    (
        "0001_dirty_the_session.up.sql",
        "CREATE TABLE pids (version int, pid int);
         INSERT INTO pids VALUES (1, pg_backend_pid());
         CREATE SCHEMA elsewhere;
         SET search_path TO elsewhere;
         SET application_name = 'leaked';
         SET work_mem = '7MB';
         CREATE TEMP TABLE leak (x int);
         PREPARE leaked_statement AS SELECT 1;",
    ),
    (
        "0002_look_at_the_session.up.sql",
        "CREATE TABLE seen AS SELECT
             current_schema()::text AS schema,
             current_setting('application_name') AS app,
             current_setting('work_mem') AS work_mem,
             (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS temp_tables,
             (SELECT count(*) FROM pg_prepared_statements) AS prepared;
         INSERT INTO public.pids VALUES (2, pg_backend_pid());",
    ),
    (
        "0003_once_more.up.sql",
        "INSERT INTO public.pids VALUES (3, pg_backend_pid());",
    ),
];

/// What migration 2 of [`LEAKY_SET`] saw of its session on tenant `i`: schema, application
/// name, `work_mem`, temp tables, prepared statements, `|`-joined.
async fn seen_by_migration_2(fleet: &Fleet, i: usize) -> anyhow::Result<Option<String>> {
    fleet
        .scalar(
            i,
            "SELECT schema || '|' || app || '|' || work_mem || '|' || temp_tables || '|' \
             || prepared FROM public.seen",
        )
        .await
}

/// [`seen_by_migration_2`] on a session as a new one is.
const AS_NEW: &str = "public|avocetd|4MB|0|0";

fn leaky_set() -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    for (file, sql) in LEAKY_SET {
        set.write(file, sql)?;
    }
    Ok(set)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_postgres_session_runs_every_migration_and_is_reset_between_them() -> anyhow::Result<()>
{
    let fleet = Fleet::postgres(2).await?;
    let set = leaky_set()?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        finished(&run)?.succeeded == 2,
        "{:?}",
        run.tenants().collect::<Vec<_>>()
    );
    let mut pids = Vec::new();
    for i in 0..2 {
        let seen = seen_by_migration_2(&fleet, i).await?;
        ensure!(
            seen.as_deref() == Some(AS_NEW),
            "tenant {i}: migration 2 saw {seen:?}"
        );
        let tenant_pids = fleet
            .scalar(
                i,
                "SELECT string_agg(DISTINCT pid::text, ',') FROM public.pids",
            )
            .await?
            .context("pids")?;
        ensure!(
            !tenant_pids.contains(','),
            "tenant {i}: migrations ran on sessions {tenant_pids}, not one"
        );
        pids.push(tenant_pids);
        // The history went to the tenant's schema, not to where migration 1 pointed.
        let history = fleet.history(i).await?;
        ensure!(history.len() == 3, "tenant {i}: {history:?}");
        let misplaced = fleet
            .scalar(i, "SELECT to_regclass('elsewhere.avocet_migrations')::text")
            .await?;
        ensure!(misplaced.is_none(), "history written to {misplaced:?}");
    }
    ensure!(pids[0] != pids[1], "two tenants shared session {}", pids[0]);
    // The session went back to its tenant's pool after the reset and the unlock.
    ensure!(fleet.server_sessions().await? == 2);
    daemon.stop().await
}

/// A session goes back to its pool when its run releases the lock, and the first migration
/// of the next run, on that same session, finds it as a new one would be: nothing of the
/// last run's script is left.
#[tokio::test(flavor = "multi_thread")]
async fn the_next_run_on_a_released_session_finds_it_reset() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    let [dirty, look, _] = LEAKY_SET;
    set.write(dirty.0, dirty.1)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    ensure!(finished(&daemon.apply_all().await?)?.succeeded == 1);
    set.write(look.0, look.1)?;
    let second = daemon.apply_all().await?;
    ensure!(
        finished(&second)?.migrations_run == 1,
        "{:?}",
        second.tenants().collect::<Vec<_>>()
    );
    let seen = seen_by_migration_2(&fleet, 0).await?;
    ensure!(
        seen.as_deref() == Some(AS_NEW),
        "the second run's migration saw {seen:?}"
    );
    let pids = fleet
        .scalar(0, "SELECT count(DISTINCT pid)::text FROM public.pids")
        .await?;
    ensure!(
        pids.as_deref() == Some("1"),
        "the two runs used {pids:?} sessions, not one"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_migrations_each_get_a_session_and_use_never_moves_the_history() -> anyhow::Result<()>
{
    let fleet = Fleet::mysql(1).await?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_dirty.up.sql",
        "CREATE TABLE ids (version INT, id BIGINT);
         INSERT INTO ids VALUES (1, CONNECTION_ID());
         SET @leaked = 'yes';
         SET SESSION sql_mode = 'ANSI_QUOTES';
         CREATE TEMPORARY TABLE leak (x INT);
         USE information_schema;",
    )?;
    set.write(
        "0002_look.up.sql",
        "CREATE TABLE seen (leaked VARCHAR(8), mode VARCHAR(255), db VARCHAR(64));
         INSERT INTO seen SELECT COALESCE(@leaked, 'no'), @@SESSION.sql_mode, DATABASE();
         INSERT INTO ids VALUES (2, CONNECTION_ID());",
    )?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        finished(&run)?.succeeded == 1,
        "{:?}",
        run.tenants().collect::<Vec<_>>()
    );
    let seen = fleet
        .scalar(
            0,
            "SELECT CAST(CONCAT(leaked, '|', db, '|', mode LIKE '%ANSI_QUOTES%') AS CHAR) FROM seen",
        )
        .await?;
    let db = &fleet.databases()[0];
    ensure!(
        seen.as_deref() == Some(format!("no|{db}|0").as_str()),
        "migration 2 saw {seen:?}"
    );
    let ids = fleet
        .scalar(0, "SELECT CAST(COUNT(DISTINCT id) AS CHAR) FROM ids")
        .await?;
    ensure!(ids.as_deref() == Some("2"), "sessions used: {ids:?}");
    ensure!(fleet.history(0).await?.len() == 2);
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_create_nothing_on_a_tenant() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let plan = daemon.plan().await?;
    ensure!(plan.tenants[0].steps.len() == 16, "{plan:?}");
    let verify = daemon.verify().await?;
    ensure!(verify.tenants[0].pending == 16, "{verify:?}");
    let status = daemon.status().await?;
    ensure!(status.pending == 1 && status.unreachable == 0, "{status:?}");
    let dry = daemon
        .apply(pb::ApplyRequest {
            dry_run: true,
            ..request()
        })
        .await?;
    ensure!(finished(&dry)?.succeeded == 1);
    let tables = fleet.objects(0, "BASE TABLE").await?;
    ensure!(tables.is_empty(), "reads created {tables:?}");
    daemon.stop().await
}

/// Samples the fleet's server sessions every 10 ms until told to stop; returns the most seen.
async fn sample_sessions(fleet: &Fleet, mut stop: watch::Receiver<bool>) -> anyhow::Result<i64> {
    let mut most = 0;
    loop {
        most = most.max(fleet.server_sessions().await?);
        tokio::select! {
            _ = stop.changed() => return Ok(most),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_connections_never_exceed_the_budgets() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(12).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write("0002_slow.up.sql", "SELECT pg_sleep(0.2);")?;
    set.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
    for (max, per_host) in [(4, 8), (8, 3)] {
        let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(30))?;
        config.max_connections = max;
        config.max_connections_per_host = per_host;
        config.fleets.get_mut(FLEET).context("fleet")?.concurrency = 12;
        let daemon = TestDaemon::start_with(config).await?;
        let (stop, stopped) = watch::channel(false);
        let sampler = sample_sessions(&fleet, stopped);
        let work = async {
            let run = daemon.apply_all().await?;
            let status = daemon.status().await?;
            let _ = stop.send(true);
            anyhow::Ok((run, status))
        };
        let (most, work) = tokio::join!(sampler, work);
        let (run, status) = work?;
        let most = most?;
        ensure!(
            finished(&run)?.failed == 0,
            "{:?}",
            run.tenants().collect::<Vec<_>>()
        );
        ensure!(status.unreachable == 0, "{status:?}");
        let budget = max.min(per_host) as i64;
        ensure!(
            most <= budget,
            "{most} server sessions seen with max_connections {max}, per host {per_host}"
        );
        ensure!(
            most >= 2,
            "only {most} sessions seen: the sampler saw nothing"
        );
        daemon.stop().await?;
        for i in 0..12 {
            fleet
                .exec(
                    i,
                    "DROP TABLE IF EXISTS a, b, avocet_migrations, avocet_migrations_log",
                )
                .await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn grouped_mode_applies_all_of_a_tenant_or_nothing() -> anyhow::Result<()> {
    for fleet in [Fleet::postgres(2).await?, Fleet::sqlite(2).await?] {
        let set = MigrationCopy::empty()?;
        set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
        set.write("0002_b.up.sql", "CREATE TABLE b (x int);")?;
        set.write(
            "0003_c.up.sql",
            "CREATE TABLE c (x int); INSERT INTO nowhere VALUES (1);",
        )?;
        let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
        let grouped = pb::ApplyRequest {
            transaction: pb::TransactionMode::Tenant as i32,
            ..request()
        };
        let run = daemon.apply(grouped.clone()).await?;
        let summary = finished(&run)?;
        ensure!(
            summary.failed == 2 && summary.migrations_run == 0,
            "{summary:?}"
        );
        let error = run
            .tenant("t00")
            .and_then(|t| t.error.clone())
            .context("error")?;
        ensure!(error.version.int() == Some(3), "{error:?}");
        for i in 0..2 {
            let tables = fleet.objects(i, "BASE TABLE").await?;
            ensure!(
                !tables.contains("a") && !tables.contains("b") && !tables.contains("c"),
                "{:?}: tenant {i} kept {tables:?}",
                fleet.dialect
            );
            let history = fleet.history(i).await?;
            ensure!(history == [(3, "failed".into(), 0)], "{history:?}");
        }
        set.write("0003_c.up.sql", "CREATE TABLE c (x int);")?;
        let run = daemon.apply(grouped).await?;
        let summary = finished(&run)?;
        ensure!(
            summary.succeeded == 2 && summary.migrations_run == 6,
            "{summary:?}"
        );
        for i in 0..2 {
            let history = fleet.history(i).await?;
            ensure!(history.iter().all(|(_, s, _)| s == "applied") && history.len() == 3);
        }
        daemon.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn grouped_mode_is_refused_where_it_cannot_hold() -> anyhow::Result<()> {
    let grouped = pb::ApplyRequest {
        transaction: pb::TransactionMode::Tenant as i32,
        ..request()
    };
    let fleet = Fleet::mysql(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let err = daemon.apply(grouped.clone()).await.unwrap_err();
    ensure!(err.code() == Some(tonic::Code::FailedPrecondition), "{err}");
    ensure!(err.to_string().contains("transactional DDL"), "{err}");
    daemon.stop().await?;
    // The PostgreSQL sample set has a CREATE INDEX CONCURRENTLY outside a transaction.
    let fleet = Fleet::postgres(1).await?;
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let err = daemon.apply(grouped).await.unwrap_err();
    ensure!(err.code() == Some(tonic::Code::FailedPrecondition), "{err}");
    ensure!(err.to_string().contains("outside a transaction"), "{err}");
    ensure!(fleet.objects(0, "BASE TABLE").await?.is_empty());
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_runs_only_the_set_that_was_planned() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let set = MigrationCopy::of(fleet.dialect)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let digest = daemon.plan().await?.set_digest;
    ensure!(digest.len() == 64, "{digest:?}");
    ensure!(
        daemon.plan().await?.set_digest == digest,
        "the digest is not stable"
    );
    set.write("0017_late.up.sql", "CREATE TABLE late (x int);")?;
    let err = daemon
        .apply(pb::ApplyRequest {
            expected_set_digest: digest.clone(),
            ..request()
        })
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::FailedPrecondition), "{err}");
    ensure!(
        fleet.objects(0, "BASE TABLE").await?.is_empty(),
        "apply ran anyway"
    );
    let digest = daemon.plan().await?.set_digest;
    let run = daemon
        .apply(pb::ApplyRequest {
            expected_set_digest: digest,
            ..request()
        })
        .await?;
    ensure!(finished(&run)?.migrations_run == 17);
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tenants_over_tls() -> anyhow::Result<()> {
    let mut fleet = Fleet::postgres(2).await?;
    for t in &mut fleet.tenants {
        t.dsn.push_str("?sslmode=require");
    }
    let daemon = TestDaemon::sample(&fleet, Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        finished(&run)?.succeeded == 2,
        "{:?}",
        run.tenants().collect::<Vec<_>>()
    );
    let mut admin = fleet.connect(0).await?;
    let encrypted: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'avocetd' AND a.datname = current_database()",
    )
    .fetch_all(&mut admin)
    .await?;
    ensure!(
        !encrypted.is_empty() && encrypted.iter().all(|(ssl,)| *ssl),
        "avocetd sessions: {encrypted:?}"
    );
    daemon.stop().await
}
