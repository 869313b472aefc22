//! The `avocet` binary against an in-process daemon serving a SQLite fleet: the README's
//! apply / status / rollback / verify flow, JSON output and exit codes.

use std::{collections::BTreeMap, path::Path, process::Output};

use avocet_daemon::{Config, DialectKind, FleetConfig, TenantConfig};
use serde_json::Value;

struct Daemon {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    dir: tempfile::TempDir,
}

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
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    for entry in std::fs::read_dir(sample).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    let tenants = ["acme", "globex", "initech"]
        .iter()
        .map(|id| TenantConfig {
            id: (*id).into(),
            dsn: format!("sqlite://{}/{id}.db?mode=rwc", dir.path().display()),
            schema: None,
            labels: BTreeMap::from([("region".into(), "eu".into())]),
            vars: Default::default(),
            password_env: None,
            password_file: None,
        })
        .collect();
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
