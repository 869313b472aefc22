//! Backups and the tenant's password (issue 31): the dump and restore tools get it through
//! their environment, never their arguments (read from `/proc/PID/cmdline` of the tool
//! process itself), and no log line of the daemon holds it; a tool gone after start fails
//! the tenant with nothing run and a message naming the tool and its package.

use std::{os::unix::fs::PermissionsExt, path::Path};

use anyhow::{Context, ensure};
use avocet_client::{Client, RolloutRecord};
use avocet_tests::{ConfigFile, Daemon, Fleet, MigrationCopy, free_port, pb};
use sqlx::{Connection, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// A wrapper of `/usr/bin/{tool}` that writes its own command line (as the kernel has it)
/// and whether `PGPASSWORD` is set into `dir`, then becomes the tool.
fn wrapper(dir: &Path, tool: &str) -> anyhow::Result<()> {
    let path = dir.join(tool);
    let out = dir.display();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n/bin/cat /proc/$$/cmdline > {out}/{tool}.cmdline.$$\n\
             [ -n \"$PGPASSWORD\" ] && /bin/echo set > {out}/{tool}.password.$$\n\
             exec /usr/bin/{tool} \"$@\"\n"
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The command lines the wrappers in `dir` recorded for `tool`, NULs as spaces.
fn cmdlines(dir: &Path, tool: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{tool}.cmdline.")) {
            let bytes = std::fs::read(entry.path())?;
            lines.push(String::from_utf8_lossy(&bytes).replace('\0', " "));
        }
    }
    Ok(lines)
}

async fn apply(client: &mut Client, all: bool) -> anyhow::Result<RolloutRecord> {
    let events = client
        .apply(pb::ApplyRequest {
            fleet: "test".into(),
            target_version: (!all).then(|| 1.into()),
            accept_data_loss: true,
            ..Default::default()
        })
        .await?;
    Ok(RolloutRecord::collect(events).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_in_the_tools_arguments_or_the_logs() -> anyhow::Result<()> {
    let admin_url = std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let role = format!("avk_pw_{suffix}");
    let password = format!("Pw{suffix}Secret");
    let mut admin = PgConnection::connect(&format!("{admin_url}/postgres")).await?;
    sqlx::raw_sql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        .execute(&mut admin)
        .await?;
    let result = with_role(&admin_url, &role, &password).await;
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    result
}

async fn with_role(admin_url: &str, role: &str, password: &str) -> anyhow::Result<()> {
    let mut fleet = Fleet::postgres(1).await?;
    let db = fleet.databases()[0].clone();
    let mut admin = PgConnection::connect(&format!("{admin_url}/postgres")).await?;
    sqlx::raw_sql(&format!("ALTER DATABASE {db} OWNER TO {role}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let host = admin_url.rsplit('@').next().unwrap_or("127.0.0.1:5432");
    fleet.tenants[0].dsn = format!("postgres://{role}:{password}@{host}/{db}");

    let dir = tempfile::tempdir()?;
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools)?;
    wrapper(&tools, "pg_dump")?;
    wrapper(&tools, "pg_restore")?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_people.up.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT);\n\
         INSERT INTO people VALUES (1, 'ann@example.com');\n",
    )?;
    set.write(
        "0002_drop_email.up.sql",
        "ALTER TABLE people DROP COLUMN email;\n",
    )?;
    let port = free_port()?;
    let file = ConfigFile {
        port,
        ..ConfigFile::default()
    }
    .write(dir.path(), &fleet, set.path())?;
    let backups = dir.path().join("backups");
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str(&format!(
        "\n[fleets.test.backup]\nwhen = \"destructive\"\nto = \"{}/{{tenant}}\"\n\
         tools_dir = \"{}\"\n",
        backups.display(),
        tools.display()
    ));
    std::fs::write(&file, text)?;
    let log = dir.path().join("avocetd.log");
    let mut daemon =
        Daemon::start_logging_with_env(BIN, &file, port, &log, &[("RUST_LOG", "debug")]).await?;
    let mut client = daemon.client().await?;

    apply(&mut client, false).await?;
    let run = apply(&mut client, true).await?;
    ensure!(
        run.finished().context("finished")?.succeeded == 1,
        "{:?}",
        run.events
    );
    // `pg_dump --version` (for the record), then the dump.
    let dumps = cmdlines(&tools, "pg_dump")?;
    let dumped = dumps
        .iter()
        .filter(|l| l.contains("--format=custom"))
        .count();
    ensure!(dumps.len() == 2 && dumped == 1, "{dumps:?}");
    let backup = client
        .list_backups("test", "t00", 0)
        .await?
        .pop()
        .context("the backup")?;
    client.restore("test", "t00", &backup.id).await?;
    let restores = cmdlines(&tools, "pg_restore")?;
    ensure!(
        restores.len() == 1 && restores[0].contains("--clean"),
        "{restores:?}"
    );
    for line in dumps.iter().chain(&restores) {
        ensure!(
            !line.contains(password),
            "the password is in a tool's arguments: {line}"
        );
    }
    // The password reached both tools, through their environment.
    let given = std::fs::read_dir(&tools)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".password."))
        .count();
    ensure!(given == 2, "{given} tools had PGPASSWORD");

    // The tool gone after start: the tenant fails before version 2 runs.
    std::fs::remove_file(tools.join("pg_dump"))?;
    let failed = apply(&mut client, true).await?;
    let error = failed
        .tenant("t00")
        .and_then(|t| t.error.clone())
        .context("t00's error")?;
    ensure!(error.code == "backup_failed", "{error:?}");
    ensure!(
        error.message.contains("pg_dump not found") && error.message.contains("postgresql-client"),
        "{error:?}"
    );
    ensure!(failed.migrations().count() == 0, "{:?}", failed.events);
    let email = fleet
        .scalar(0, "SELECT email FROM people WHERE id = 1")
        .await?;
    ensure!(email.as_deref() == Some("ann@example.com"), "{email:?}");

    for record in client.list_backups("test", "", 0).await? {
        ensure!(!format!("{record:?}").contains(password), "{record:?}");
    }
    ensure!(!format!("{:?}", failed.events).contains(password));
    daemon.child.kill().await?;
    let logged = std::fs::read_to_string(&log)?;
    ensure!(logged.contains("backup taken"), "the log: {logged}");
    ensure!(
        !logged.contains(password),
        "the password is in the daemon's log"
    );
    Ok(())
}
