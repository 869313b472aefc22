//! The `avocet` binary against an in-process daemon serving a SQLite fleet: the README's
//! apply / status / rollback / verify flow, JSON output and exit codes.

use std::{collections::BTreeMap, process::Output};

use avocet_daemon::{Config, DialectKind, FleetConfig};
use serde_json::Value;

struct Daemon {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    dir: tempfile::TempDir,
}

#[path = "../common/mod.rs"]
mod common;

mod authoring;
mod connection;
mod destructive;
mod flow;
mod usage;

/// Starts a daemon over three SQLite tenants and a copy of the sample set in a temporary
/// directory (`<dir>/migrations`).
async fn start() -> Daemon {
    start_with(|_| {}).await
}

/// As [`start`], with `change` made to the configuration first.
async fn start_with(change: impl FnOnce(&mut Config)) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let migrations = common::copy_sample_set(dir.path());
    let mut tenants = common::sqlite_tenants(dir.path(), &["acme", "globex", "initech"]);
    for t in &mut tenants {
        t.labels = BTreeMap::from([("region".into(), "eu".into())]);
    }
    let fleet = FleetConfig {
        concurrency: 8,
        lock_timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(5),
        tenants,
        // Tenants registered through the API keep their files here.
        sqlite_root: Some(dir.path().to_owned()),
        ..FleetConfig::new(DialectKind::Sqlite, migrations)
    };
    let mut config = Config {
        fleets: BTreeMap::from([("demo".into(), fleet)]),
        control_store: format!("sqlite://{}/control.db?mode=rwc", dir.path().display()),
        ..Config::default()
    };
    change(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(avocet_daemon::serve(listener, config, async {
        let _ = stopped.await;
    }));
    Daemon { addr, stop, dir }
}

async fn avocet(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(&args)
        .env_remove("AVOCET_ADDR")
        .env_remove("AVOCET_TOKEN")
        .output()
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
