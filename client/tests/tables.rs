//! `avocet status` and `avocet status --tenant` as a person reads them: columns that stay in
//! line with diesel's 18-digit versions, long tenant ids and long migration names (issue
//! 28). The `avocet` binary against an in-process daemon serving a diesel set on SQLite.

mod common;

use std::{collections::BTreeMap, process::Output};

use avocet_daemon::{Config, DialectKind, FleetConfig};

/// Tenants whose ids are longer than the old 24-character column.
const TENANTS: [&str; 2] = ["t1", "tenant-with-a-rather-long-identifier-01"];

/// A diesel set: a 14-digit version, an 18-digit one with a long name, a 14-digit one.
fn diesel_set(dir: &std::path::Path) {
    for (name, table) in [
        ("2024-03-13-170000_people", "people"),
        (
            "2025-11-19-123456-0000_a_migration_whose_name_is_longer_than_thirty_two_characters",
            "pets",
        ),
        ("2026-01-20-162913_cars", "cars"),
    ] {
        let at = dir.join(name);
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join("up.sql"), format!("CREATE TABLE {table} (id int);")).unwrap();
    }
}

async fn avocet(args: &[&str]) -> String {
    let out: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(args)
        .env_remove("AVOCET_ADDR")
        .env_remove("AVOCET_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The character column where each of `cells` starts in `line`, found left to right.
fn starts(line: &str, cells: &[&str]) -> Vec<usize> {
    let mut from = 0;
    cells
        .iter()
        .map(|cell| {
            let at = from
                + line[from..]
                    .find(cell)
                    .unwrap_or_else(|| panic!("{cell} in {line:?}"));
            from = at + cell.len();
            line[..at].chars().count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_columns_stay_in_line_with_long_versions_ids_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    diesel_set(&migrations);
    let tenants = common::sqlite_tenants(dir.path(), &TENANTS);
    let fleet = FleetConfig {
        concurrency: 8,
        lock_timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(5),
        tenants,
        ..FleetConfig::new(DialectKind::Sqlite, migrations)
    };
    let config = Config {
        fleets: BTreeMap::from([("demo".into(), fleet)]),
        control_store: format!("sqlite://{}/control.db?mode=rwc", dir.path().display()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(avocet_daemon::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let a = addr.as_str();
    // One tenant at the 18-digit version, the other at the last (14-digit) one.
    avocet(&[
        "apply",
        "--addr",
        a,
        "--yes",
        "--tenants",
        "t1",
        "--to",
        "202511191234560000",
    ])
    .await;
    avocet(&["apply", "--addr", a, "--yes", "--tenants", TENANTS[1]]).await;

    let status = avocet(&["status", "--refresh", "--addr", a]).await;
    let lines: Vec<&str> = status.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("TENANT"))
        .unwrap_or_else(|| panic!("{status}"));
    let columns = starts(lines[header], &["TENANT", "VERSION", "PENDING"]);
    let rows = [
        (lines[header + 1], ["t1", "202511191234560000", "1"]),
        (lines[header + 2], [TENANTS[1], "20260120162913", "0"]),
    ];
    for (line, cells) in rows {
        assert_eq!(starts(line, &cells), columns, "{status}");
    }

    let history = avocet(&["status", "--tenant", "t1", "--addr", a]).await;
    let records: Vec<&str> = history.lines().filter(|l| l.contains("applied")).collect();
    assert_eq!(records.len(), 2, "{history}");
    let at = |line: &str| starts(line, &["applied", "batch"]);
    assert_eq!(at(records[0]), at(records[1]), "{history}");
    let _ = stop.send(());
}
