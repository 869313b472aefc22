//! `avocet backup`, `avocet backups list` and `avocet restore` against an in-process daemon
//! serving one SQLite tenant: a named backup at version 1, a migration that drops a
//! column, and a restore that asks first (refused without a terminal and `--yes`), then
//! brings version 1 back.

mod common;

use std::{collections::BTreeMap, process::Output};

use avocet_daemon::{Config, DialectKind, FleetConfig, config::BackupConfig};
use serde_json::Value;

async fn avocet(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(args)
        .env_remove("AVOCET_ADDR")
        .env_remove("AVOCET_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_list_and_restore_with_a_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_people.up.sql"),
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT);\n\
         INSERT INTO people VALUES (1, 'ann@example.com');\n",
    )
    .unwrap();
    std::fs::write(
        migrations.join("0002_drop_email.up.sql"),
        "ALTER TABLE people DROP COLUMN email;\n",
    )
    .unwrap();
    let fleet = FleetConfig {
        tenants: common::sqlite_tenants(dir.path(), &["acme"]),
        backup: BackupConfig {
            to: format!("{}/backups/{{tenant}}", dir.path().display()),
            ..BackupConfig::default()
        },
        ..FleetConfig::new(DialectKind::Sqlite, migrations)
    };
    let config = Config {
        fleets: BTreeMap::from([("demo".into(), fleet)]),
        control_store: format!("sqlite://{}/control.db?mode=rwc", dir.path().display()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(avocet_daemon::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let a = addr.as_str();
    let mut ready = false;
    for _ in 0..200 {
        if avocet(&["fleets", "--addr", a]).await.status.success() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the daemon did not answer");

    let out = avocet(&["apply", "--to", "1", "--addr", a]).await;
    assert!(out.status.success(), "{out:?}");
    let out = avocet(&[
        "backup",
        "--tenant",
        "acme",
        "--name",
        "before-drop",
        "--addr",
        a,
        "--output",
        "json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let taken: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &taken["backups"][0];
    assert_eq!(b["version"], "1", "{b}");
    assert_eq!(b["name"], "before-drop", "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(b["path"].as_str().unwrap()).exists());

    let out = avocet(&["apply", "--accept-data-loss", "--addr", a]).await;
    assert!(out.status.success(), "{out:?}");
    let out = avocet(&["backups", "list", "--addr", a]).await;
    assert!(out.status.success(), "{out:?}");
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&id) && listed.contains("before-drop"),
        "{listed}"
    );

    // No terminal and no --yes: refused, the question naming the tenant, time and version.
    let out = avocet(&["restore", "--tenant", "acme", "--backup", &id, "--addr", a]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let why = text(&out.stderr);
    assert!(
        why.contains("tenant acme") && why.contains("version 1") && why.contains("UTC"),
        "{why}"
    );
    assert!(why.contains("--yes"), "{why}");
    let out = avocet(&[
        "status", "--tenant", "acme", "--addr", a, "--output", "json",
    ])
    .await;
    assert!(text(&out.stdout).contains("\"2\""), "{}", text(&out.stdout));

    let out = avocet(&[
        "restore", "--tenant", "acme", "--backup", &id, "--yes", "--addr", a,
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("restored from backup")
            && text(&out.stdout).contains("version 1"),
        "{}",
        text(&out.stdout)
    );
    let out = avocet(&["verify", "--addr", a, "--output", "json"]).await;
    assert!(out.status.success(), "{out:?}");
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &verified["tenants"][0];
    assert_eq!(t["current_version_text"], "1", "{verified}");
    assert_eq!(t["ok"], true, "{verified}");
}
