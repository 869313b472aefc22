//! Backups before risky migrations, and restore (issue 31), on each dialect's real server:
//! a fleet with `when = "destructive"` backs a tenant up right before the migration that
//! drops a column (recorded, the file there with the SHA-256 recorded), the migration runs,
//! and a restore brings the column, its values and the history at the earlier version back,
//! with `verify` clean afterwards and the restore in the history log.

use std::{path::Path, time::Duration};

use anyhow::{Context, ensure};
use avocet_daemon::{
    Config, DialectKind,
    config::BackupConfig,
    model::{BackupOnFailure, BackupWhen},
};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb, request};
use sha2::{Digest, Sha256};

/// A set whose version 1 makes `people` with rows and version 2 drops its `email` column;
/// version 3 (when `more`) adds and drops more, for retention.
fn set(more: usize) -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_people.up.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100));\n\
         INSERT INTO people (id, name, email) VALUES (1, 'ann', 'ann@example.com'), (2, 'bob', 'bob@example.com');\n",
    )?;
    set.write(
        "0002_drop_email.up.sql",
        "ALTER TABLE people DROP COLUMN email;\n",
    )?;
    for i in 0..more {
        let v = 3 + 2 * i;
        set.write(
            &format!("{v:04}_add_c{i}.up.sql"),
            &format!("ALTER TABLE people ADD COLUMN c{i} INTEGER;\n"),
        )?;
        set.write(
            &format!("{:04}_drop_c{i}.up.sql", v + 1),
            &format!("ALTER TABLE people DROP COLUMN c{i};\n"),
        )?;
    }
    Ok(set)
}

/// The test daemon's configuration for `fleet` on `set`, backing up as `policy` says.
fn config(fleet: &Fleet, set: &MigrationCopy, policy: BackupConfig) -> anyhow::Result<Config> {
    let mut config = TestDaemon::config(fleet, set.path(), Duration::from_secs(10))?;
    config.fleets.get_mut(FLEET).context("fleet")?.backup = policy;
    Ok(config)
}

/// `when = "destructive"` into `dir/{fleet}/{tenant}`.
fn destructive(dir: &Path) -> BackupConfig {
    BackupConfig {
        when: BackupWhen::Destructive,
        to: format!("{}/{{fleet}}/{{tenant}}", dir.display()),
        ..BackupConfig::default()
    }
}

/// Applies every tenant up to `to` (0: the latest), the data loss accepted.
async fn apply(daemon: &TestDaemon, to: i64) -> anyhow::Result<avocet_client::RolloutRecord> {
    Ok(daemon
        .apply(pb::ApplyRequest {
            target_version: (to > 0).then(|| to.into()),
            accept_data_loss: true,
            ..request()
        })
        .await?)
}

/// The `BackupTaken` events of a rollout.
fn taken(run: &avocet_client::RolloutRecord) -> Vec<pb::BackupTaken> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::BackupTaken(b)) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// The SHA-256 of a file, lowercase hex.
fn sha256(path: &str) -> anyhow::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

/// The flow on `fleet`, with a PostgreSQL control store in `store` when given (else SQLite).
async fn backup_before_destructive_then_restore(
    fleet: Fleet,
    store: Option<&Fleet>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let set = set(0)?;
    let mut config = config(&fleet, &set, destructive(dir.path()))?;
    if let Some(store) = store {
        config.control_store = store.tenants[0].dsn.clone();
    }
    let daemon = TestDaemon::start_with(config).await?;
    let mut client = daemon.client();
    // Version 1 destroys nothing: no backup.
    let first = apply(&daemon, 1).await?;
    ensure!(taken(&first).is_empty(), "{:?}", first.events);
    ensure!(client.list_backups(FLEET, "", 0).await?.is_empty());

    let run = apply(&daemon, 0).await?;
    let finished = run.finished().context("finished")?;
    ensure!(finished.succeeded == 1, "{:?}", run.events);
    let events = taken(&run);
    ensure!(events.len() == 1, "{events:?}");
    // The backup came right before version 2 started, under the lock.
    let kinds: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::BackupTaken(_)) => Some("backup"),
            Some(pb::rollout_event::Kind::MigrationStarted(_)) => Some("started"),
            _ => None,
        })
        .collect();
    ensure!(kinds == ["backup", "started"], "{kinds:?}");

    let listed = client.list_backups(FLEET, "t00", 0).await?;
    ensure!(listed.len() == 1, "{listed:?}");
    let b = &listed[0];
    ensure!(b.id == events[0].backup_id && b.state == "taken", "{b:?}");
    ensure!(
        (
            b.version.text().as_str(),
            b.before_version.text().as_str(),
            b.before_direction.as_str()
        ) == ("1", "2", "up"),
        "{b:?}"
    );
    ensure!(b.rollout_id == run.id().unwrap_or_default(), "{b:?}");
    ensure!(
        Path::new(&b.path).starts_with(dir.path().join(FLEET).join("t00")),
        "{b:?}"
    );
    let on_disk = std::fs::metadata(&b.path)?.len();
    ensure!(on_disk == b.bytes && b.bytes > 0, "{on_disk} vs {b:?}");
    ensure!(sha256(&b.path)? == b.sha256, "{b:?}");
    ensure!(!b.tool.is_empty() && !b.tool_version.is_empty(), "{b:?}");
    // The migration ran.
    ensure!(!fleet.columns(0, "people").await?.contains("email"));

    let restored = client.restore(FLEET, "t00", &b.id).await?;
    ensure!(restored.version.text() == "1", "{restored:?}");
    ensure!(fleet.columns(0, "people").await?.contains("email"));
    let email = fleet
        .scalar(0, "SELECT email FROM people WHERE id = 2")
        .await?;
    ensure!(email.as_deref() == Some("bob@example.com"), "{email:?}");
    let history = fleet.history_text(0).await?;
    ensure!(
        history == [("1".to_owned(), "applied".to_owned())],
        "{history:?}"
    );
    // The restore is in the history log: a `restored` entry of version 1 by the backup.
    let logged = fleet
        .scalar(
            0,
            "SELECT rollout_id FROM avocet_migrations_log WHERE version = 1 \
             AND status = 'restored'",
        )
        .await?;
    ensure!(logged == Some(format!("restore:{}", b.id)), "{logged:?}");
    ensure!(fleet.log_count(0, 1, "restored").await? == 1);
    ensure!(fleet.log_count(0, 1, "applied").await? == 1);
    // `status` (from the last-known state) says version 1 at once.
    let status = daemon.known_status().await?;
    let versions: Vec<(String, u32)> = status
        .versions
        .iter()
        .map(|v| (v.version.text(), v.tenants))
        .collect();
    ensure!(
        versions == [("1".to_owned(), 1)] && status.pending == 1,
        "{status:?}"
    );
    let verified = client
        .verify_all(pb::VerifyRequest {
            fleet: FLEET.into(),
            ..Default::default()
        })
        .await?;
    let t = &verified.tenants[0];
    ensure!(
        t.ok && t.current_version.text() == "1" && t.pending == 1,
        "{t:?}"
    );
    // Applying again takes a new backup and drops the column again.
    let again = apply(&daemon, 0).await?;
    ensure!(taken(&again).len() == 1, "{:?}", again.events);
    ensure!(!fleet.columns(0, "people").await?.contains("email"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_backs_up_before_a_destructive_migration_and_restores() -> anyhow::Result<()> {
    // The backups' records in a PostgreSQL control store.
    let store = Fleet::postgres(1).await?;
    backup_before_destructive_then_restore(Fleet::postgres(1).await?, Some(&store)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_backs_up_before_a_destructive_migration_and_restores() -> anyhow::Result<()> {
    backup_before_destructive_then_restore(Fleet::mysql(1).await?, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_backs_up_before_a_destructive_migration_and_restores() -> anyhow::Result<()> {
    backup_before_destructive_then_restore(Fleet::sqlite(1).await?, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_tenants_are_dumped_and_restored_alone() -> anyhow::Result<()> {
    let fleet = Fleet::postgres_schemas(2).await?;
    let dir = tempfile::tempdir()?;
    let set = set(0)?;
    let daemon = TestDaemon::start_with(config(&fleet, &set, destructive(dir.path()))?).await?;
    let mut client = daemon.client();
    let run = apply(&daemon, 0).await?;
    ensure!(run.finished().context("finished")?.succeeded == 2);
    // One backup per schema, each taken right before version 2, holding version 1.
    let listed = client.list_backups(FLEET, "s00", 0).await?;
    ensure!(
        listed.len() == 1 && listed[0].version.text() == "1",
        "{listed:?}"
    );
    let b = client
        .list_backups(FLEET, "s01", 0)
        .await?
        .pop()
        .context("s01's backup")?;
    ensure!(b.version.text() == "1", "{b:?}");
    let r = client.restore(FLEET, "s01", &b.id).await?;
    ensure!(r.version.text() == "1", "{r:?}");
    ensure!(fleet.columns(1, "people").await?.contains("email"));
    // The other schema is untouched by s01's restore.
    ensure!(!fleet.columns(0, "people").await?.contains("email"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_two_after_four_destructive_migrations_leaves_the_two_newest() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let dir = tempfile::tempdir()?;
    // Versions 2, 4, 6 and 8 drop a column.
    let set = set(3)?;
    let policy = BackupConfig {
        keep: 2,
        ..destructive(dir.path())
    };
    let daemon = TestDaemon::start_with(config(&fleet, &set, policy)?).await?;
    let mut client = daemon.client();
    apply(&daemon, 1).await?;
    let mut ids = Vec::new();
    for to in [2, 4, 6, 8] {
        let run = apply(&daemon, to).await?;
        let events = taken(&run);
        ensure!(events.len() == 1, "to {to}: {:?}", run.events);
        ids.push(events[0].backup_id.clone());
    }
    let listed = client.list_backups(FLEET, "t00", 0).await?;
    let kept: Vec<&str> = listed.iter().map(|b| b.id.as_str()).collect();
    ensure!(
        kept == [ids[3].as_str(), ids[2].as_str()],
        "{kept:?} of {ids:?}"
    );
    let versions: Vec<String> = listed.iter().map(|b| b.before_version.text()).collect();
    ensure!(versions == ["8", "6"], "{versions:?}");
    let files = std::fs::read_dir(dir.path().join(FLEET).join("t00"))?.count();
    ensure!(files == 2, "{files} files");
    // The metrics count four taken, their bytes and durations, by fleet.
    let (_, text) = avocet_tests::get(daemon.admin, "/metrics").await?;
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains("fleet=\"test\""))
            .map(str::to_owned)
    };
    let taken = line("avocet_backups_total").context("avocet_backups_total")?;
    ensure!(
        taken.contains("state=\"taken\"") && taken.ends_with(" 4"),
        "{taken}"
    );
    let bytes = line("avocet_backup_written_bytes_total").context("written bytes")?;
    let total: u64 = listed.iter().map(|b| b.bytes).sum();
    ensure!(
        bytes.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()) > Some(total),
        "{bytes}"
    );
    line("avocet_backup_duration_seconds_count").context("avocet_backup_duration_seconds")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_into_an_unwritable_directory_fails_the_tenant_with_nothing_run()
-> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let dir = tempfile::tempdir()?;
    // A file where the directory should be: it cannot be made, whoever runs the test.
    std::fs::write(dir.path().join("blocked"), "not a directory")?;
    let set = set(0)?;
    let policy = BackupConfig {
        to: format!("{}/blocked/{{tenant}}", dir.path().display()),
        ..destructive(dir.path())
    };
    let daemon = TestDaemon::start_with(config(&fleet, &set, policy)?).await?;
    apply(&daemon, 1).await?;
    let run = apply(&daemon, 0).await?;
    let t = run.tenant("t00").context("t00")?;
    let error = t.error.as_ref().context("error")?;
    ensure!(error.code == "backup_failed", "{error:?}");
    ensure!(
        error.message.contains("version 2") && error.message.contains("blocked"),
        "{error:?}"
    );
    ensure!(
        t.migrations_run == 0 && run.migrations().count() == 0,
        "{t:?}"
    );
    ensure!(fleet.columns(0, "people").await?.contains("email"));
    let history = fleet.history_text(0).await?;
    ensure!(
        history == [("1".to_owned(), "applied".to_owned())],
        "{history:?}"
    );
    // The failure is recorded.
    let listed = daemon.client().list_backups(FLEET, "t00", 0).await?;
    ensure!(
        listed.len() == 1 && listed[0].state == "failed" && !listed[0].error.is_empty(),
        "{listed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_continue_runs_the_migration_without_its_backup() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("blocked"), "not a directory")?;
    let set = set(0)?;
    let policy = BackupConfig {
        to: format!("{}/blocked/{{tenant}}", dir.path().display()),
        on_failure: BackupOnFailure::Continue,
        ..destructive(dir.path())
    };
    let daemon = TestDaemon::start_with(config(&fleet, &set, policy)?).await?;
    let run = apply(&daemon, 0).await?;
    ensure!(
        run.finished().context("finished")?.succeeded == 1,
        "{:?}",
        run.events
    );
    ensure!(taken(&run).is_empty());
    ensure!(!fleet.columns(0, "people").await?.contains("email"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_whose_fleet_needs_a_missing_tool_does_not_start() -> anyhow::Result<()> {
    for (fleet, package) in [
        (Fleet::postgres(1).await?, "postgresql-client"),
        (Fleet::mysql(1).await?, "mariadb-client"),
    ] {
        let empty = tempfile::tempdir()?;
        let set = set(0)?;
        let policy = BackupConfig {
            tools_dir: Some(empty.path().to_owned()),
            ..destructive(empty.path())
        };
        let error = match TestDaemon::start_with(config(&fleet, &set, policy)?).await {
            Ok(_) => anyhow::bail!("{:?}: the daemon started without its tool", fleet.dialect),
            Err(e) => format!("{e:#}"),
        };
        ensure!(
            error.contains(FLEET) && error.contains(package) && error.contains("not found"),
            "{error}"
        );
    }
    // `never` needs no tool.
    let fleet = Fleet::postgres(1).await?;
    let empty = tempfile::tempdir()?;
    let set = set(0)?;
    let policy = BackupConfig {
        tools_dir: Some(empty.path().to_owned()),
        ..BackupConfig::default()
    };
    TestDaemon::start_with(config(&fleet, &set, policy)?).await?;
    ensure!(fleet.dialect == DialectKind::Postgres);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_is_refused_while_a_rollout_holds_the_tenant() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(1).await?;
    let dir = tempfile::tempdir()?;
    let set = set(0)?;
    set.write("0003_slow.up.sql", "SELECT pg_sleep(2);\n")?;
    let daemon = TestDaemon::start_with(config(&fleet, &set, destructive(dir.path()))?).await?;
    let mut client = daemon.client();
    apply(&daemon, 1).await?;
    let b = client.take_backup(FLEET, "t00", "before").await?;
    ensure!(
        b.version.text() == "1" && b.name == "before" && b.rollout_id.is_empty(),
        "{b:?}"
    );
    let mut events = client
        .apply(pb::ApplyRequest {
            accept_data_loss: true,
            ..request()
        })
        .await?;
    let id = events.message().await?.context("first event")?.rollout_id;
    let refused = client
        .restore(FLEET, "t00", &b.id)
        .await
        .err()
        .context("a restore during the rollout")?;
    let rejection = refused.rejection().context("a rejection")?;
    ensure!(
        rejection.reason() == Some("TENANT_IN_ROLLOUT") && rejection.rollout() == Some(&id),
        "{refused}"
    );
    while client.rollout(&id).await?.finished_at_unix_ms.is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(fleet.history_text(0).await?.len() == 3);
    let r = client.restore(FLEET, "t00", &b.id).await?;
    ensure!(r.version.text() == "1", "{r:?}");
    ensure!(fleet.columns(0, "people").await?.contains("email"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_file_is_not_restored_and_delete_removes_the_file() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let dir = tempfile::tempdir()?;
    let set = set(0)?;
    let daemon = TestDaemon::start_with(config(&fleet, &set, destructive(dir.path()))?).await?;
    let mut client = daemon.client();
    apply(&daemon, 0).await?;
    let b = client
        .list_backups(FLEET, "t00", 0)
        .await?
        .pop()
        .context("the backup")?;
    let original = std::fs::read(&b.path)?;
    let mut changed = original.clone();
    changed.extend_from_slice(b"tampered");
    std::fs::write(&b.path, &changed)?;
    let refused = client
        .restore(FLEET, "t00", &b.id)
        .await
        .err()
        .context("a restore of a changed file")?;
    let rejection = refused.rejection().context("a rejection")?;
    ensure!(
        rejection.reason() == Some("BACKUP_FILE_CHANGED")
            && rejection.message().contains(&b.sha256),
        "{refused}"
    );
    ensure!(
        !fleet.columns(0, "people").await?.contains("email"),
        "nothing was restored"
    );
    // A tenant the fleet does not have is refused before the backup is looked at.
    let other = client
        .restore(FLEET, "t01", &b.id)
        .await
        .err()
        .context("t01")?;
    ensure!(other.code() == Some(tonic::Code::NotFound), "{other}");
    ensure!(client.delete_backup(FLEET, &b.id).await?);
    ensure!(!Path::new(&b.path).exists(), "the file stayed");
    ensure!(!client.delete_backup(FLEET, &b.id).await?, "deleted twice");
    let gone = client.get_backup(FLEET, &b.id).await.err().context("get")?;
    ensure!(
        gone.rejection().and_then(|r| r.reason()) == Some("BACKUP_NOT_FOUND"),
        "{gone}"
    );
    Ok(())
}
