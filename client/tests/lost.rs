//! Issue 24, item 11: a daemon that dies under an attached `avocet apply`. The daemon runs
//! on a runtime of its own, on a thread of its own; dropping that runtime ends every task
//! and closes every socket of it at once, as a killed process's kernel does. The client
//! says the connection was lost and how to look, never that the rollout goes on; a daemon
//! started again on the same control store shows the rollout interrupted.

mod common;

use std::{collections::BTreeMap, path::Path, time::Duration};

use avocet_daemon::{Config, DialectKind, FleetConfig};

/// The configuration of a daemon over three SQLite tenants in `dir` and a copy of the
/// sample set.
fn config(dir: &Path) -> Config {
    let migrations = common::copy_sample_set(dir);
    let tenants = common::sqlite_tenants(dir, &["acme", "globex", "initech"]);
    let fleet = FleetConfig {
        tenants,
        ..FleetConfig::new(DialectKind::Sqlite, migrations)
    };
    Config {
        fleets: BTreeMap::from([("demo".into(), fleet)]),
        control_store: format!("sqlite://{}/control.db?mode=rwc", dir.display()),
        ..Config::default()
    }
}

/// Serves `config` on a runtime of its own, on `port` (any when 0); returns its address and
/// a sender that, when sent to or dropped, drops that runtime (the daemon dies with no
/// goodbye).
fn serve_on_own_runtime(config: Config, port: u16) -> (String, std::sync::mpsc::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            addr_tx
                .send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let _ = avocet_daemon::serve(listener, config, std::future::pending()).await;
        });
        let _ = killed.recv();
        rt.shutdown_background();
    });
    (addr_rx.recv().unwrap(), kill)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_dies_mid_stream_is_a_lost_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (addr, kill) = serve_on_own_runtime(config.clone(), 0);
    // The first wave runs, then the stream waits, open.
    let child = common::paused_apply(&addr).await;
    drop(kill);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client noticed within a minute")
        .unwrap();
    let id = common::assert_lost_connection(&out, &addr);

    // What `rollouts get` then says, on the daemon started again (same address, so the
    // same replica: it takes back what it held, and marks the rollout interrupted).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    let (addr, _kill) = serve_on_own_runtime(config, port);
    let mut got = None;
    for _ in 0..100 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
            .args(["rollouts", "get", &id, "--addr", &addr, "--output", "json"])
            .env_remove("AVOCET_TOKEN")
            .output()
            .await
            .unwrap();
        if out.status.success() {
            got = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = got.expect("the restarted daemon answered");
    assert!(got.contains("interrupted"), "{got}");
}
