//! From an empty directory, `avocetd` alone serves the demo fleet: it says so, `data/` and
//! the tenants' files exist once it listens, and an apply migrates all three tenants.

use std::{process::Stdio, time::Duration};

use avocet_proto::v1::{self as pb, migrator_client::MigratorClient, rollout_event::Kind};

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_directory_serves_the_demo_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log = dir.path().join("avocetd.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_avocetd"))
        .current_dir(dir.path())
        .env("AVOCET_LISTEN", format!("127.0.0.1:{port}"))
        // Empty: no admin listener, so the default port 9464 is never contended.
        .env("AVOCET_ADMIN_LISTEN", "")
        .env_remove("AVOCET_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..400 {
        if let Ok(c) = MigratorClient::connect(addr.clone()).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("avocetd listens");
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("serving the built-in default"),
        "first log line: {text}"
    );
    // stderr is a file here: no ANSI colour codes in it.
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text}"
    );
    for tenant in ["acme", "globex", "initech"] {
        assert!(
            dir.path().join(format!("data/{tenant}.db")).is_file(),
            "{tenant}"
        );
    }
    assert!(
        dir.path()
            .join("data/sample-migrations/sqlite/0001_create_accounts.up.sql")
            .is_file()
    );
    let mut events = client
        .apply(pb::ApplyRequest {
            fleet: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut finished = None;
    while let Some(event) = events.message().await.unwrap() {
        if let Some(Kind::RolloutFinished(f)) = event.kind {
            finished = Some(f);
        }
    }
    let finished = finished.expect("the rollout finished");
    assert_eq!(
        (finished.succeeded, finished.failed),
        (3, 0),
        "{finished:?}"
    );
    assert!(finished.migrations_run >= 3 * 16, "{finished:?}");
    child.kill().await.unwrap();
}
