//! What `avocet status`, `avocet tenants` and `avocet rollouts list/get` print of a
//! tenant's last-known state and of dry runs (issue 24, items 1, 2 and 13): the `avocet`
//! binary against an in-process daemon over three SQLite tenants.

mod common;

use std::{collections::BTreeMap, process::Output};

use avocet_daemon::{Config, DialectKind, FleetConfig};

struct Daemon {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    migrations: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A daemon over tenants `acme`, `globex` and `initech` and a copy of the sample set.
async fn start() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("control.db");
    start_on(dir, &store, "demo", &["acme", "globex", "initech"]).await
}

/// A daemon over fleet `fleet` of SQLite tenants `ids` in `dir`, with a copy of the sample
/// set there, keeping its control store in the SQLite file `store`.
async fn start_on(
    dir: tempfile::TempDir,
    store: &std::path::Path,
    fleet: &str,
    ids: &[&str],
) -> Daemon {
    let migrations = common::copy_sample_set(dir.path());
    let tenants = common::sqlite_tenants(dir.path(), ids);
    let config = FleetConfig {
        concurrency: 8,
        lock_timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(5),
        tenants,
        ..FleetConfig::new(DialectKind::Sqlite, migrations.clone())
    };
    let config = Config {
        fleets: BTreeMap::from([(fleet.into(), config)]),
        control_store: format!("sqlite://{}?mode=rwc", store.display()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(avocet_daemon::serve(listener, config, async {
        let _ = stopped.await;
    }));
    Daemon {
        addr,
        stop,
        migrations,
        _dir: dir,
    }
}

/// Runs `avocet ARGS --addr ADDR`, which must succeed, and returns its stdout.
async fn avocet(d: &Daemon, args: &[&str]) -> String {
    let out: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(args)
        .args(["--addr", &d.addr])
        .env_remove("AVOCET_ADDR")
        .env_remove("AVOCET_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cells of `id`'s row in a table printed by the CLI.
fn row(out: &str, id: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no row {id} in {out}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_tenants_judge_the_last_reading_against_the_set_of_now() {
    let d = start().await;
    // Never read: the whole set is pending on each.
    let out = avocet(&d, &["status"]).await;
    assert!(
        out.contains("3 tenant(s): 0 up to date, 0 pending, 0 failed, 0 unreachable, 3 never read"),
        "{out}"
    );
    assert_eq!(row(&out, "acme"), ["acme", "-", "16"], "{out}");
    let out = avocet(&d, &["tenants"]).await;
    assert_eq!(row(&out, "globex")[1], "never read, 16 pending", "{out}");

    avocet(&d, &["apply"]).await;
    let out = avocet(&d, &["status", "--refresh"]).await;
    assert!(out.contains("3 up to date, 0 pending"), "{out}");
    // A 17th migration while the daemon runs: every tenant is at 16, one pending.
    std::fs::write(
        d.migrations.join("0017_add_projects_owner.up.sql"),
        "ALTER TABLE projects ADD COLUMN owner TEXT;",
    )
    .unwrap();
    let out = avocet(&d, &["status"]).await;
    assert!(
        out.contains("latest version 17  3 tenant(s): 0 up to date, 3 pending"),
        "{out}"
    );
    for id in ["acme", "globex", "initech"] {
        assert_eq!(row(&out, id), [id, "16", "1"], "{out}");
    }
    let out = avocet(&d, &["tenants"]).await;
    assert_eq!(row(&out, "initech")[1], "1 pending", "{out}");
    let _ = d.stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollouts_list_and_get_mark_dry_runs() {
    let d = start().await;
    avocet(&d, &["apply", "--dry-run"]).await;
    avocet(&d, &["apply"]).await;
    let listed: serde_json::Value =
        serde_json::from_str(&avocet(&d, &["--output", "json", "rollouts", "list"]).await).unwrap();
    let rollouts = listed["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 2, "{listed}");
    let id = |dry: bool| {
        rollouts
            .iter()
            .find(|r| r["dry_run"] == dry)
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("dry_run {dry} in {listed}"))
            .to_owned()
    };
    let (dry, real) = (id(true), id(false));
    let out = avocet(&d, &["rollouts", "list"]).await;
    assert!(out.starts_with("ROLLOUT"), "{out}");
    assert_eq!(row(&out, &dry)[2], "apply (dry run)", "{out}");
    assert_eq!(row(&out, &real)[2], "apply", "{out}");
    let out = avocet(&d, &["rollouts", "get", &dry]).await;
    assert!(out.contains("apply (dry run)  succeeded"), "{out}");
    let out = avocet(&d, &["rollouts", "get", &real]).await;
    assert!(!out.contains("dry run"), "{out}");
    let _ = d.stop.send(());
}

/// Two daemons of different configurations on one control store (issue 32, item 2): the
/// second's start forgets none of the first's tenants, whose status stays as read, and the
/// first, restarted, forgets none of the second's.
#[tokio::test(flavor = "multi_thread")]
async fn two_configurations_on_one_store_keep_each_others_tenants() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("control.db");
    let first = start_on(
        tempfile::tempdir().unwrap(),
        &store,
        "demo",
        &["acme", "globex"],
    )
    .await;
    avocet(&first, &["apply"]).await;
    let second = start_on(tempfile::tempdir().unwrap(), &store, "other", &["hooli"]).await;
    avocet(&second, &["apply"]).await;
    let out = avocet(&first, &["status"]).await;
    assert!(out.contains("2 tenant(s): 2 up to date"), "{out}");
    let _ = first.stop.send(());
    let again = start_on(tempfile::tempdir().unwrap(), &store, "demo", &["acme"]).await;
    let out = avocet(&second, &["status"]).await;
    assert!(out.contains("1 tenant(s): 1 up to date"), "{out}");
    // Its own fleet's tenant that left the configuration is forgotten; the one kept is not.
    let out = avocet(&again, &["status"]).await;
    assert!(out.contains("1 tenant(s): 1 up to date"), "{out}");
    let _ = (second.stop.send(()), again.stop.send(()));
}
