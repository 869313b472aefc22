//! Helpers shared by the client's test binaries: a copy of the sample SQLite set and a
//! fleet's SQLite tenants, each in a test's own directory, and an `avocet apply` left
//! waiting between waves.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use avocet_daemon::TenantConfig;

/// Copies the sample SQLite set (`migrations/sqlite`) into `dir/migrations`; returns it.
pub(crate) fn copy_sample_set(dir: &Path) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let migrations = dir.join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    for entry in std::fs::read_dir(sample).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    migrations
}

/// One SQLite tenant per id, each a file `dir/<id>.db` created on first use.
pub(crate) fn sqlite_tenants(dir: &Path, ids: &[&str]) -> Vec<TenantConfig> {
    ids.iter()
        .map(|id| TenantConfig {
            id: (*id).into(),
            dsn: format!("sqlite://{}/{id}.db?mode=rwc", dir.display()),
            schema: None,
            labels: BTreeMap::new(),
            vars: Default::default(),
            password_env: None,
            password_file: None,
        })
        .collect()
}

/// `avocet apply --output json` through `addr`, one tenant a wave with a minute between
/// waves, spawned; returns once the first wave has run and the stream waits, open.
pub(crate) async fn paused_apply(addr: &str) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args([
            "apply",
            "--addr",
            addr,
            "--wave-size",
            "1",
            "--pause-between-waves",
            "60s",
            "--output",
            "json",
        ])
        .env_remove("AVOCET_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child
}

/// Checks what `avocet apply` through `addr` says when it lost its daemon mid-stream: exit
/// status 3, that the connection was lost, how to look at the rollout, never that it goes
/// on. Returns the rollout's id, from the first event printed.
pub(crate) fn assert_lost_connection(out: &std::process::Output, addr: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let id = first["rollout_id"].as_str().unwrap().to_owned();
    assert!(
        stderr.contains(&format!("the connection to the daemon at {addr} was lost")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("avocet rollouts get {id}")),
        "{stderr}"
    );
    assert!(!stderr.contains("continues"), "{stderr}");
    id
}
