//! End-to-end against a real PostgreSQL server.

use avocet_tests::{Fleet, scenarios};

#[tokio::test(flavor = "multi_thread")]
async fn fleet_of_50_applies_rolls_back_and_reapplies() -> anyhow::Result<()> {
    scenarios::full_cycle(Fleet::postgres(50).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_applied_file_is_reported_as_drift() -> anyhow::Result<()> {
    scenarios::drift(Fleet::postgres(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_migration_leaves_no_trace_and_others_finish() -> anyhow::Result<()> {
    scenarios::failing_migration(Fleet::postgres(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_applies_run_each_migration_once() -> anyhow::Result<()> {
    scenarios::concurrent_applies(Fleet::postgres(3).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn held_advisory_lock_times_out() -> anyhow::Result<()> {
    scenarios::lock_timeout(Fleet::postgres(1).await?).await
}

/// What a script does to its session (`SET search_path`) stays in that migration: the next
/// one lands in the tenant's own schema whether or not both run in one rollout.
#[tokio::test(flavor = "multi_thread")]
async fn session_settings_do_not_leak_into_the_next_migration() -> anyhow::Result<()> {
    use anyhow::ensure;
    use avocet_tests::TestDaemon;

    let fleet = Fleet::postgres(1).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("1_elsewhere.sql"),
        "CREATE SCHEMA reporting;\nSET search_path TO reporting;\nCREATE TABLE daily (d date);\n",
    )?;
    std::fs::write(
        dir.path().join("2_accounts.sql"),
        "CREATE TABLE accounts (id int);\n",
    )?;
    let daemon = TestDaemon::start(&fleet, dir.path(), std::time::Duration::from_secs(5)).await?;
    ensure!(
        daemon
            .apply_all()
            .await?
            .finished()
            .expect("finished")
            .failed
            == 0
    );
    let schema = fleet
        .scalar(
            0,
            "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'accounts'",
        )
        .await?;
    ensure!(
        schema.as_deref() == Some("public"),
        "accounts landed in {schema:?}"
    );
    daemon.stop().await
}

/// A `CREATE INDEX CONCURRENTLY` that fails leaves an invalid index behind, so its failed
/// record blocks the tenant instead of being retried (where `IF NOT EXISTS` would then
/// "succeed" over the invalid index).
#[tokio::test(flavor = "multi_thread")]
async fn failed_concurrent_index_blocks_until_repaired() -> anyhow::Result<()> {
    use anyhow::ensure;
    use avocet_tests::TestDaemon;

    let fleet = Fleet::postgres(1).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("1_emails.sql"),
        "CREATE TABLE users (email text);\nINSERT INTO users VALUES ('a'), ('a');\n",
    )?;
    std::fs::write(
        dir.path().join("2_unique_email.sql"),
        "-- avocet:no-transaction\n\
         CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);\n",
    )?;
    let daemon = TestDaemon::start(&fleet, dir.path(), std::time::Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    let t0 = run.tenant("t00").expect("t00");
    ensure!(
        t0.error
            .as_ref()
            .is_some_and(|e| e.code == "migration_failed"),
        "{t0:?}"
    );
    let invalid = fleet
        .scalar(
            0,
            "SELECT (NOT i.indisvalid)::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'users_email_key'",
        )
        .await?;
    ensure!(
        invalid.as_deref() == Some("true"),
        "the failed build left {invalid:?}"
    );
    ensure!(fleet.history(0).await?.last() == Some(&(2, "failed".into(), 0)));

    fleet.exec(0, "DELETE FROM users").await?;
    let plan = daemon.plan().await?;
    let d = &plan.tenants[0].diagnostics;
    ensure!(
        plan.tenants[0].blocked && d[0].code == "partially_applied",
        "{d:?}"
    );
    let again = daemon.apply_all().await?;
    ensure!(
        again
            .tenant("t00")
            .and_then(|t| t.error.as_ref())
            .is_some_and(|e| e.code == "blocked")
    );
    daemon.stop().await
}

/// A statement that fails in a statement-by-statement run is named by its number, the line
/// and column where it starts, and the line and column in the file of the spot PostgreSQL
/// points at (its error `position`, mapped from the statement's text back to the file).
#[tokio::test(flavor = "multi_thread")]
async fn failing_statement_names_its_line_column_and_the_error_position() -> anyhow::Result<()> {
    use anyhow::ensure;
    use avocet_tests::TestDaemon;

    let fleet = Fleet::postgres(1).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("1_positions.sql"),
        "-- avocet:no-transaction\n\
         CREATE TABLE a (id int);\n\
         /* the next one fails */  SELECT id,\n\
         \x20      nosuchcol\n\
         FROM a;\n\
         CREATE TABLE b (id int);\n",
    )?;
    let daemon = TestDaemon::start(&fleet, dir.path(), std::time::Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    let error = run.tenant("t00").and_then(|t| t.error.clone());
    let message = error
        .as_ref()
        .map(|e| e.message.as_str())
        .unwrap_or_default();
    ensure!(
        message.contains(
            "statement 2 of 3 (line 3, column 27), error at line 4, column 8: \
             error returned from database: column \"nosuchcol\" does not exist"
        ),
        "{error:?}"
    );
    let (_, status, done) = fleet.history(0).await?.pop().expect("a history row");
    ensure!((status.as_str(), done) == ("failed", 1), "{status} {done}");
    daemon.stop().await
}

/// A syntax error in a script PostgreSQL receives as one request (it parses the whole request
/// before running any of it) is the failing statement's own: the migration is recorded
/// `failed` with its version, and the message names the statement and its line.
#[tokio::test(flavor = "multi_thread")]
async fn a_syntax_error_is_recorded_as_the_migrations_failure() -> anyhow::Result<()> {
    use anyhow::ensure;
    use avocet_tests::{TestDaemon, VersionField};

    let fleet = Fleet::postgres(1).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("1_t1.sql"), "CREATE TABLE t1 (a int);\n")?;
    std::fs::write(
        dir.path().join("2_t2.sql"),
        "CREATE TABLE t2 (a int);\n\
         ALTER TABLE t2 ADD CONSTRAINT u UNIQUE (a) DROP CONSTRAINT IF EXISTS u;\n",
    )?;
    let daemon = TestDaemon::start(&fleet, dir.path(), std::time::Duration::from_secs(5)).await?;
    let run = daemon.apply_all().await?;
    let error = run.tenant("t00").and_then(|t| t.error.clone());
    let error = error.as_ref();
    ensure!(
        error.is_some_and(|e| e.code == "migration_failed"
            && e.version.int() == Some(2)
            && e.message.contains("statement 2 of 2 (line 2, column 1)")
            && e.message.contains("syntax error")),
        "{error:?}"
    );
    let history = fleet.history(0).await?;
    ensure!(
        history.iter().any(|h| h.0 == 2 && h.1 == "failed"),
        "{history:?}"
    );
    daemon.stop().await
}
