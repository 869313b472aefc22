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

#[tokio::test(flavor = "multi_thread")]
async fn readme_flow_apply_status_rollback_verify() {
    let d = start().await;
    let a = d.addr.as_str();

    // Reads create nothing: the tenants' files (`?mode=rwc`) come with the first apply.
    for read in [
        &["plan"][..],
        &["status", "--refresh"],
        &["verify"],
        &["tenants"],
    ] {
        let out = avocet(&[read, &["--addr", a]].concat()).await;
        assert!(out.status.success(), "{read:?}: {out:?}");
    }
    let out = avocet(&["status", "--addr", a]).await;
    assert!(stdout(&out).contains("3 pending"), "{}", stdout(&out));
    for id in ["acme", "globex", "initech"] {
        let file = d.dir.path().join(format!("{id}.db"));
        assert!(!file.exists(), "a read created {}", file.display());
    }
    // The sample set plans with no lint finding: nothing a newcomer copies is flagged.
    let out = avocet(&["plan", "--addr", a]).await;
    assert!(!stdout(&out).contains("lint:"), "{}", stdout(&out));

    let out = avocet(&["apply", "--addr", a]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("3 succeeded, 0 failed"),
        "{}",
        stdout(&out)
    );

    let out = avocet(&["--addr", a, "--output", "json", "status"]).await;
    assert!(out.status.success());
    let status = json(&out);
    assert_eq!(status["up_to_date"], 3, "{status}");
    for t in status["tenants"].as_array().unwrap() {
        assert_eq!(t["current_version"], 16, "{t}");
    }

    let out = avocet(&[
        "rollback",
        "--steps",
        "2",
        "--accept-data-loss",
        "--addr",
        a,
        "--output",
        "json",
    ])
    .await;
    assert!(out.status.success());
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "rollout_started");
    assert_eq!(events[0]["data"]["direction"], "down");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "rollout_finished");
    assert_eq!(last["data"]["migrations_run"], 6, "{last}");

    let out = avocet(&["verify", "--addr", a, "--output", "json"]).await;
    assert!(out.status.success(), "{out:?}");
    let verify = json(&out);
    assert_eq!(verify["ok"], true);
    for t in verify["tenants"].as_array().unwrap() {
        assert_eq!(t["current_version"], 14);
        assert_eq!(t["pending"], 2);
    }

    let out = avocet(&["plan", "--addr", a, "--tenants", "acme"]).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("acme  at 14  2 step(s)"),
        "{}",
        stdout(&out)
    );

    let out = avocet(&["tenants", "--addr", a, "--selector", "region=eu"]).await;
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    let _ = d.stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_status_says_what_went_wrong() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&["apply", "--addr", a, "--fleet", "nope"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fleet \"nope\" not found"));
    // The daemon's reason code after its message; under --output json the same error is one
    // object on stderr, with the same exit status (docs/errors.md).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(NotFound, FLEET_NOT_FOUND)"), "{err}");
    let out = avocet(&["apply", "--addr", a, "--fleet", "nope", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stderr).expect("one JSON object on stderr");
    let e = &doc["error"];
    assert_eq!(e["code"], "NOT_FOUND", "{doc}");
    assert_eq!(e["reason"], "FLEET_NOT_FOUND", "{doc}");
    assert_eq!(e["fleet"], "nope", "{doc}");
    assert!(e["tenant"].is_null() && e["version"].is_null(), "{doc}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("fleet \"nope\" not found"),
        "{doc}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    let out = avocet(&["apply", "--addr", a, "--to", "99", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stderr).expect("one JSON object on stderr");
    let e = &doc["error"];
    assert_eq!(e["code"], "INVALID_ARGUMENT", "{doc}");
    assert_eq!(e["reason"], "VERSION_NOT_FOUND", "{doc}");
    assert_eq!(
        (&e["fleet"], &e["version"]),
        (&"demo".into(), &"99".into()),
        "{doc}"
    );

    let out = avocet(&["rollback", "--addr", a, "--steps", "1", "--last-batch"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap rejects conflicting targets"
    );

    let out = avocet(&["apply", "--addr", a, "--to", "3"]).await;
    assert!(out.status.success());
    // Edit an applied file: verify and plan report it and exit 1, apply refuses every tenant.
    let file = d.dir.path().join("migrations/0002_create_users.up.sql");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n-- edited after it was applied\n")).unwrap();
    let out = avocet(&["verify", "--addr", a]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[checksum_mismatch] version 2"),
        "{}",
        stdout(&out)
    );
    let out = avocet(&["plan", "--addr", a]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = avocet(&["apply", "--addr", a]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("0 succeeded, 3 failed"),
        "{}",
        stdout(&out)
    );

    let out = avocet(&["status", "--addr", "http://127.0.0.1:1"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach avocetd"));
    let out = avocet(&["status", "--addr", "http://127.0.0.1:1", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stderr).expect("one JSON object on stderr");
    assert_eq!(doc["error"]["code"], "UNAVAILABLE", "{doc}");
    assert!(doc["error"]["reason"].is_null(), "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach avocetd"),
        "{doc}"
    );
    let _ = d.stop.send(());
}

/// Slips a new user makes are answered, not passed over: each exit status and message.
#[tokio::test(flavor = "multi_thread")]
async fn no_silent_surprises() {
    let d = start().await;
    let a = d.addr.as_str();

    // A selector that matches no tenant runs nothing and says so.
    let out = avocet(&["apply", "--addr", a, "--selector", "region=mars"]).await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("fleet \"demo\": no tenant matches the selector \"region=mars\""),
        "{stderr}"
    );
    let out = avocet(&["status", "--addr", a, "--selector", "region=mars"]).await;
    assert_eq!(out.status.code(), Some(3));

    // Zero tenants at once is refused before anything is sent.
    for flag in ["--concurrency", "--per-host-concurrency"] {
        let out = avocet(&["apply", "--addr", a, flag, "0"]).await;
        assert_eq!(out.status.code(), Some(2), "{flag} 0");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("0 is not in 1.."), "{flag}: {stderr}");
    }
    let out = avocet(&["status", "--addr", a, "--refresh"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A rollback target above every version is refused like an apply to it.
    let out = avocet(&["apply", "--addr", a]).await;
    assert!(out.status.success(), "{}", stdout(&out));
    let out = avocet(&["rollback", "--addr", a, "--to", "99"]).await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("rollback to version 99 would roll back nothing"),
        "{stderr}"
    );
    let out = avocet(&["status", "--addr", a, "--output", "json"]).await;
    assert!(
        stdout(&out).contains("\"up_to_date\": 3") || stdout(&out).contains("\"up_to_date\":3"),
        "the refused rollback changed something: {}",
        stdout(&out)
    );

    // One tenant's full history.
    let history = json(
        &avocet(&[
            "status", "--addr", a, "--tenant", "acme", "--output", "json",
        ])
        .await,
    );
    assert_eq!(history["tenant"], "acme", "{history}");
    let records = history["records"].as_array().unwrap();
    assert!(
        records.len() >= 16 && records.iter().all(|r| r["status"] == "applied"),
        "{history}"
    );
    assert_eq!(
        history["pending_versions"].as_array().map(Vec::len),
        Some(0),
        "{history}"
    );
    let text = avocet(&["status", "--addr", a, "--tenant", "acme"]).await;
    assert!(
        text.status.success() && stdout(&text).contains("create_accounts"),
        "{}",
        stdout(&text)
    );

    // A tenant that cannot be read makes status exit 1.
    let dsn = format!("sqlite://{}/missing-dir/x.db", d.dir.path().display());
    let out = avocet(&[
        "tenants", "add", "--addr", a, "--fleet", "demo", "--id", "ghost", "--dsn", &dsn,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = avocet(&["status", "--addr", a, "--refresh"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // The SQLite open error names the file and the fix.
    let out = avocet(&["status", "--addr", a, "--refresh", "--output", "json"]).await;
    assert!(
        stdout(&out).contains("missing-dir/x.db") && stdout(&out).contains("add ?mode=rwc"),
        "{}",
        stdout(&out)
    );
    let out = avocet(&["verify", "--addr", a]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("ghost"), "{}", stdout(&out));

    // A file that looks like a migration but is not one is a warning the plan lists.
    std::fs::write(d.dir.path().join("migrations/0200_foo.UP.SQL"), "SELECT 1;").unwrap();
    let out = avocet(&["plan", "--addr", a, "--tenants", "acme"]).await;
    assert!(
        stdout(&out).contains("warning: ")
            && stdout(&out).contains("0200_foo.UP.SQL looks like a migration"),
        "{}",
        stdout(&out)
    );

    // Global flags go before or after the subcommand.
    for args in [
        ["--fleet", "demo", "tenants", "--addr", a],
        ["tenants", "--fleet", "demo", "--addr", a],
        ["--addr", a, "--output", "json", "tenants"],
    ] {
        let out = avocet(&args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(stdout(&out).contains("acme"), "{args:?}");
    }
    let out = avocet(&[
        "--fleet", "demo", "rollouts", "list", "--addr", a, "--output", "json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let _ = d.stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_the_flag_or_the_environment() {
    use sha2::{Digest, Sha256};
    let token = |name: &str, role: &str| avocet_daemon::config::TokenConfig {
        name: name.into(),
        sha256: Some(hex::encode(Sha256::digest(format!("{name}-secret")))),
        sha256_file: None,
        role: role.parse().unwrap(),
        fleets: Vec::new(),
    };
    let d = start_with(|c| {
        let elsewhere = avocet_daemon::config::TokenConfig {
            fleets: vec!["eu-*".into()],
            ..token("elsewhere", "operator")
        };
        c.auth.tokens = vec![
            token("dashboards", "viewer"),
            token("deployer", "operator"),
            elsewhere,
        ];
    })
    .await;
    let addr = d.addr.as_str();
    // A token scoped to fleets the daemon does not serve is told so, not that the daemon
    // serves no fleet (issue 32, item 4).
    let out = avocet(&["--addr", addr, "--token", "elsewhere-secret", "status"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serves no fleet you may use"), "{err}");
    let none = avocet(&["--addr", addr, "status"]).await;
    assert_eq!(none.status.code(), Some(3), "{none:?}");
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(err.contains("AVOCET_TOKEN"), "{err}");
    // The gate's refusal carries its reason like every other error.
    assert!(err.contains("NO_CREDENTIALS"), "{err}");
    // A viewer's token, from the environment: status answers, apply is refused.
    let viewer = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"));
        cmd.args(args)
            .env_remove("AVOCET_ADDR")
            .env("AVOCET_TOKEN", "dashboards-secret");
        cmd
    };
    let status = viewer(&["--addr", addr, "status"]).output().await.unwrap();
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    let apply = viewer(&["--addr", addr, "apply"]).output().await.unwrap();
    assert_eq!(apply.status.code(), Some(3), "{apply:?}");
    let err = String::from_utf8_lossy(&apply.stderr);
    assert!(
        err.contains("dashboards is a viewer") && err.contains("needs operator"),
        "{err}"
    );
    assert!(err.contains("(PermissionDenied, ROLE_TOO_LOW)"), "{err}");
    // The operator's token, from the flag, after the subcommand.
    let apply = avocet(&["apply", "--addr", addr, "--token", "deployer-secret"]).await;
    assert_eq!(apply.status.code(), Some(0), "{apply:?}");
    let rollouts = avocet(&[
        "--addr",
        addr,
        "--token",
        "deployer-secret",
        "rollouts",
        "list",
        "--output",
        "json",
    ])
    .await;
    assert!(
        stdout(&rollouts).contains("deployer (peer 127.0.0.1"),
        "{}",
        stdout(&rollouts)
    );
    let _ = d.stop.send(());
}

/// One way to accept risk: without a terminal, an apply that would destroy data is refused
/// before anything starts, naming `--accept-data-loss`; `--yes` only skips the question and
/// accepts nothing; `--accept-data-loss` alone is enough. A dry run of the blocked plan exits
/// as `plan` does (1) and says "dry run: blocked", never "succeeded".
#[tokio::test(flavor = "multi_thread")]
async fn destructive_applies_need_accept_data_loss_and_only_that() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&["apply", "--addr", a]).await;
    assert!(out.status.success(), "{}", stdout(&out));
    std::fs::write(
        d.dir.path().join("migrations/0100_drop_audit.up.sql"),
        "DROP TABLE audit_events;\n",
    )
    .unwrap();
    let plan = avocet(&["plan", "--addr", a]).await;
    assert_eq!(plan.status.code(), Some(1), "blocked: {}", stdout(&plan));
    assert!(
        stdout(&plan).contains("destructive drop_table version 100 (drop_audit) line 1"),
        "{}",
        stdout(&plan)
    );
    let dry = avocet(&["apply", "--addr", a, "--dry-run"]).await;
    assert_eq!(
        dry.status.code(),
        Some(1),
        "a dry run is a plan: {}",
        stdout(&dry)
    );
    assert!(
        stdout(&dry).contains("dry run: blocked"),
        "{}",
        stdout(&dry)
    );
    assert!(!stdout(&dry).contains("succeeded"), "{}", stdout(&dry));
    for flags in [&[][..], &["--yes"][..]] {
        let mut args = vec!["apply", "--addr", a];
        args.extend(flags);
        let out = avocet(&args).await;
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("pass --accept-data-loss"),
            "{flags:?}: {stderr}"
        );
        assert!(!stderr.contains("pass --yes"), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("DESTRUCTIVE: version 100 (drop_audit) line 1: drop_table"),
            "{stderr}"
        );
    }
    let status = json(&avocet(&["status", "--addr", a, "--refresh", "--output", "json"]).await);
    assert_eq!(status["pending"], 3, "nothing ran: {status}");
    let out = avocet(&["apply", "--addr", a, "--accept-data-loss"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every tenant is at version 100 (the schema itself is checked by the PostgreSQL
    // test in tests/tests/lint.rs).
    let status = json(&avocet(&["status", "--addr", a, "--refresh", "--output", "json"]).await);
    assert_eq!(status["up_to_date"], 3, "{status}");
    assert_eq!(status["latest_version"], 100, "{status}");
    // The set still holds the destructive 100, applied everywhere: the next apply plans
    // the tenants (the set alone could block), finds nothing destructive pending, and runs.
    std::fs::write(
        d.dir.path().join("migrations/0101_audit_note.up.sql"),
        "CREATE TABLE audit_notes (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let out = avocet(&["apply", "--addr", a, "--yes"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json(&avocet(&["status", "--addr", a, "--refresh", "--output", "json"]).await);
    assert_eq!(status["latest_version"], 101, "{status}");
    assert_eq!(status["up_to_date"], 3, "{status}");
    let _ = d.stop.send(());
}

/// A rollback is guarded as an apply is: a `down` that destroys data is refused on every
/// tenant without `--accept-data-loss`, naming it; its dry run says so and exits 1; with the
/// flag it runs.
#[tokio::test(flavor = "multi_thread")]
async fn destructive_rollbacks_need_accept_data_loss() {
    let d = start().await;
    let a = d.addr.as_str();
    let migrations = d.dir.path().join("migrations");
    std::fs::write(
        migrations.join("0100_t100.up.sql"),
        "CREATE TABLE t100 (a int);\n",
    )
    .unwrap();
    std::fs::write(migrations.join("0100_t100.down.sql"), "DROP TABLE t100;\n").unwrap();
    let out = avocet(&["apply", "--addr", a]).await;
    assert!(out.status.success(), "{}", stdout(&out));
    let dry = avocet(&["rollback", "--addr", a, "--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(1), "{}", stdout(&dry));
    assert!(
        stdout(&dry).contains("dry run: blocked"),
        "{}",
        stdout(&dry)
    );
    assert!(
        stdout(&dry).contains("down script destroys data"),
        "{}",
        stdout(&dry)
    );
    let out = avocet(&["rollback", "--addr", a, "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("avocet rollback --accept-data-loss"),
        "{}",
        stdout(&out)
    );
    let status = json(&avocet(&["status", "--addr", a, "--refresh", "--output", "json"]).await);
    assert_eq!(status["latest_version"], 100, "{status}");
    assert_eq!(status["up_to_date"], 3, "nothing was rolled back: {status}");
    let out = avocet(&["rollback", "--addr", a, "--accept-data-loss"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json(&avocet(&["status", "--addr", a, "--refresh", "--output", "json"]).await);
    assert_eq!(status["pending"], 3, "every tenant rolled back: {status}");
    let _ = d.stop.send(());
}

/// A TCP proxy to `upstream` on a port of its own; dropping the returned handle's tasks
/// (abort) closes every connection through it at once, as a daemon that dies does.
async fn proxy(upstream: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            connections.spawn(async move {
                let host = upstream.trim_start_matches("http://");
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(host).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

/// `avocet apply --output json` through `addr`, one tenant a wave with a minute between
/// waves, spawned; returns once the first wave has run and the stream waits, open.
async fn paused_apply(addr: &str) -> tokio::process::Child {
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

/// A daemon that goes away mid-stream (every connection to it closed at once, as when it
/// is killed) is one sentence: the connection was lost, and how to look at the rollout;
/// never a claim that it goes on, which the client cannot know (issue 24, item 11).
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_says_so_and_how_to_look() {
    let d = start().await;
    let (addr, cut) = proxy(d.addr.clone()).await;
    let child = paused_apply(&addr).await;
    cut.abort();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client noticed within a minute")
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let first: Value = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
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
    assert!(
        !stderr.contains("BrokenPipe") && !stderr.contains("transport error"),
        "{stderr}"
    );
    // Here the daemon still runs it (a killed one would have left it interrupted): what the
    // client said names the command that tells which.
    let out = avocet(&[
        "rollouts", "get", &id, "--addr", &d.addr, "--output", "json",
    ])
    .await;
    assert!(stdout(&out).contains("running"), "{}", stdout(&out));
    let _ = d.stop.send(());
}

/// A daemon shutting down under an attached `apply` (its rollout left interrupted) is no
/// success: the stream ends with the daemon's reason, not as if the rollout had ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_shutting_down_mid_apply_is_no_success() {
    let Daemon {
        addr,
        stop,
        dir: _dir,
    } = start().await;
    let child = paused_apply(&addr).await;
    let _ = stop.send(());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client noticed within a minute")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Not 0, as if it had succeeded: 3, the daemon ended the call.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr.contains("the daemon is shutting down"), "{stderr}");
    // And it says how to go on: the rollout stopped with the daemon, resume it.
    assert!(stderr.contains("avocet rollouts resume "), "{stderr}");
}

/// `avocet new` writes the next pair into the fleet's set, and the daemon picks it up.
#[tokio::test(flavor = "multi_thread")]
async fn new_writes_the_next_migration_into_the_fleets_set() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&["new", "--addr", a, "Add invoice notes"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let migrations = std::fs::canonicalize(d.dir.path().join("migrations")).unwrap();
    let up = migrations.join("0017_add_invoice_notes.up.sql");
    let down = migrations.join("0017_add_invoice_notes.down.sql");
    assert_eq!(
        stdout(&out),
        format!("{}\n{}\n", up.display(), down.display())
    );
    std::fs::write(&up, "ALTER TABLE invoices ADD COLUMN note TEXT;\n").unwrap();
    std::fs::write(&down, "ALTER TABLE invoices DROP COLUMN note;\n").unwrap();
    let plan = json(&avocet(&["plan", "--addr", a, "--output", "json"]).await);
    let steps = plan["tenants"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["version"], 17, "{plan}");
    let again = avocet(&["new", "--addr", a, "second"]).await;
    assert!(
        stdout(&again).contains("0018_second.up.sql"),
        "{}",
        stdout(&again)
    );
    // With --dir it needs no daemon.
    let dir = migrations.to_string_lossy().into_owned();
    let offline = avocet(&[
        "new",
        "--addr",
        "http://127.0.0.1:1",
        "--dir",
        &dir,
        "third",
    ])
    .await;
    assert!(offline.status.success(), "{offline:?}");
    assert!(
        stdout(&offline).contains("0019_third.up.sql"),
        "{}",
        stdout(&offline)
    );
    let _ = d.stop.send(());
}

/// `avocet plan` takes the strategy flags `apply` takes, and shows the waves they make.
#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_waves_of_the_strategy_flags() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&["plan", "--addr", a, "--canary", "1", "--wave-size", "1"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("canary: 1 tenant(s)"), "{text}");
    assert!(text.contains("wave 2: 1 tenant(s)"), "{text}");
    // A warning every tenant's plan gives is said once, with their count.
    std::fs::write(
        d.dir.path().join("migrations/0017_add_notes.up.sql"),
        "-- avocet:no-transaction\nCREATE TABLE notes (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let text = stdout(&avocet(&["plan", "--addr", a]).await);
    assert_eq!(text.matches("[no_transaction]").count(), 1, "{text}");
    assert!(text.contains("outside a transaction (3 tenants)"), "{text}");
    let _ = d.stop.send(());
}

/// A migration file larger than gRPC's default 4 MiB message is planned: the plan carries
/// its SQL, and the client reads answers up to `MAX_RESPONSE_BYTES` (issue 25, finding 11).
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_above_four_mib_is_planned() {
    let d = start().await;
    let a = d.addr.as_str();
    let mut sql = String::from("CREATE TABLE bulk (id INTEGER PRIMARY KEY, note TEXT);\n");
    let mut rows = 0;
    while sql.len() < 6 * 1024 * 1024 {
        sql.push_str(&format!(
            "INSERT INTO bulk (id, note) VALUES ({rows}, 'row {rows} of a data migration');\n"
        ));
        rows += 1;
    }
    std::fs::write(d.dir.path().join("migrations/0017_bulk.up.sql"), &sql).unwrap();
    let out = avocet(&["plan", "--addr", a, "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    let step = plan["tenants"][0]["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(step["version"], 17, "{step}");
    assert_eq!(step["statements"], rows + 1, "{step}");
    let checksum = step["checksum"].as_str().unwrap();
    assert_eq!(
        plan["scripts"][checksum].as_str().map(str::len),
        Some(sql.len())
    );
    let _ = d.stop.send(());
}

/// `avocet new` names the file by its description (transliterated, never dropping a letter),
/// refuses a name the set has, and the file it writes is refused by the plan until it holds
/// SQL: a migration that does nothing is never recorded by accident.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_migration_is_refused_until_it_has_sql() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&["new", "--addr", a, "Add Invoices: v2 / with ünïcode!"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("add_invoices_v2_with_unicode"),
        "{}",
        stdout(&out)
    );
    let again = avocet(&["new", "--addr", a, "add invoices v2 with unicode"]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("named add_invoices_v2_with_unicode already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let plan = avocet(&["plan", "--addr", a]).await;
    assert_eq!(plan.status.code(), Some(1), "{}", stdout(&plan));
    assert!(
        stdout(&plan).contains("empty_migration"),
        "{}",
        stdout(&plan)
    );
    assert!(
        stdout(&plan).contains("still the empty file `avocet new` wrote"),
        "{}",
        stdout(&plan)
    );
    let _ = d.stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_over_chosen_tenants_reports_each_and_a_repeat_changes_nothing() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&["apply", "--addr", a, "--yes"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A failed rollback undone by hand leaves version 1 applied: mark it on two tenants.
    let mark = |how: &'static str| {
        [
            "repair",
            "--addr",
            a,
            "--version",
            "1",
            "--mark",
            how,
            "--tenants",
            "acme,globex",
        ]
    };
    let out = avocet(&mark("rolled-back")).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for tenant in ["acme", "globex"] {
        let line = format!("tenant {tenant}: version 1 was applied, now rolled_back");
        assert!(stdout(&out).contains(&line), "{}", stdout(&out));
    }
    assert!(!stdout(&out).contains("initech"), "{}", stdout(&out));
    // The same repair again changes nothing and is no error.
    let out = avocet(&mark("rolled-back")).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("tenant acme: version 1 is already rolled_back: nothing to change"),
        "{}",
        stdout(&out)
    );
    // Marking it applied is refused on each tenant (it has not run since): exit 1.
    let mut json_args = mark("applied").to_vec();
    json_args.extend(["--output", "json"]);
    let out = avocet(&json_args).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc = json(&out);
    let tenants = doc["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2, "{doc}");
    assert!(
        tenants.iter().all(|t| t["changed"] == false
            && t["error"]
                .as_str()
                .is_some_and(|e| e.contains("no failed or running record"))),
        "{doc}"
    );
    // One tenant and a selector at once is bad usage.
    let out = avocet(&[
        "repair",
        "--addr",
        a,
        "--version",
        "1",
        "--mark",
        "applied",
        "--tenant",
        "acme",
        "--tenants",
        "globex",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let _ = d.stop.send(());
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bad usage exits 2 with a sentence saying what to give; the documented, expected case of
/// baseline and adopt (tenants with history, left alone) exits 0 (issue 32, items 3 and 8).
#[tokio::test(flavor = "multi_thread")]
async fn bad_usage_exits_2_and_expected_refusals_exit_0() {
    let d = start().await;
    let a = d.addr.as_str();
    let usage = |out: &Output, says: &str| {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(stderr(out).contains(says), "{}", stderr(out));
    };
    usage(
        &avocet(&["rollouts", "get", "nope", "--addr", a]).await,
        "\"nope\" is not a rollout id",
    );
    usage(
        &avocet(&["new", "", "--addr", a]).await,
        "no letter or digit",
    );
    usage(
        &avocet(&["new", "x", "--addr", a, "--tenants", "acme"]).await,
        "avocet new does not take --tenants",
    );
    usage(
        &avocet(&[
            "status",
            "--addr",
            a,
            "--tenant",
            "acme",
            "--tenants",
            "globex",
        ])
        .await,
        "avocet status --tenant does not take --tenants",
    );
    usage(
        &avocet(&["plan", "--addr", a, "--wave-size", "0"]).await,
        "runs nothing",
    );
    usage(
        &avocet(&["plan", "--addr", a, "--max-failures", "150%"]).await,
        "\"150%\" is above 100%",
    );
    // The action is one of three; the usage line does not show defaulted flags as required.
    let out = avocet(&["repair", "--addr", a, "--tenant", "acme", "--version", "1"]).await;
    usage(&out, "--accept-checksum");
    assert!(stderr(&out).contains("--forget"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("--addr <ADDR>"), "{}", stderr(&out));
    // More canaries than tenants is refused by the daemon, naming both numbers.
    let out = avocet(&["plan", "--addr", a, "--canary", "5"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out).contains("a canary of 5 is more than the 3 selected tenant(s)"),
        "{}",
        stderr(&out)
    );

    // Tenants with history are left alone by baseline and adopt, reported, exit 0.
    assert!(avocet(&["apply", "--addr", a]).await.status.success());
    for args in [["baseline", "--to", "16"], ["adopt", "--from", "sqlx"]] {
        let out = avocet(&[&args[..], &["--addr", a]].concat()).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(
            stdout(&out).contains("acme: left alone: it has"),
            "{}",
            stdout(&out)
        );
    }
    // A target below a tenant's version is said, not passed over as a success.
    let out = avocet(&["apply", "--addr", a, "--to", "5"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("already past version 5 (at 16)"),
        "{}",
        stdout(&out)
    );
    let _ = d.stop.send(());
}

/// Several fleets and no `--fleet` is bad usage, naming them.
#[tokio::test(flavor = "multi_thread")]
async fn several_fleets_need_a_fleet_flag() {
    let d = start_with(|c| {
        let demo = c.fleets["demo"].clone();
        c.fleets.insert("second".into(), demo);
    })
    .await;
    let out = avocet(&["status", "--addr", &d.addr]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("choose one with --fleet (demo, second)"),
        "{}",
        stderr(&out)
    );
    let _ = d.stop.send(());
}

/// Times are RFC 3339 (and both forms in JSON); a resume is named a resume; status says
/// nothing about --refresh after one, and errors have their own column (issue 32, item 8).
#[tokio::test(flavor = "multi_thread")]
async fn words_and_numbers_an_operator_reads() {
    let d = start().await;
    let a = d.addr.as_str();
    let out = avocet(&[
        "apply",
        "--addr",
        a,
        "--detach",
        "--wave-size",
        "1",
        "--pause-between-waves",
        "60s",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).trim().to_owned();
    for action in ["pause", "resume", "cancel"] {
        let out = avocet(&["rollouts", action, &id, "--addr", a]).await;
        assert!(out.status.success(), "{action}: {out:?}");
    }
    let watched = avocet(&["rollouts", "watch", &id, "--addr", a]).await;
    let text = stdout(&watched);
    assert!(
        text.contains("rollout paused by an unauthenticated caller"),
        "{text}"
    );
    assert!(
        text.contains("rollout resumed by an unauthenticated caller"),
        "{text}"
    );
    let out = avocet(&["rollouts", "get", &id, "--addr", a]).await;
    let text = stdout(&out);
    let year = chrono::Utc::now().format("%Y-").to_string();
    assert!(
        text.contains("started by an unauthenticated caller (peer 127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains(&format!(") at {year}")) && text.contains("Z\n"),
        "{text}"
    );
    assert!(!text.contains(" ms\n"), "{text}");
    let got = json(&avocet(&["rollouts", "get", &id, "--addr", a, "--output", "json"]).await);
    assert!(got["created_at_unix_ms"].as_i64().is_some(), "{got}");
    assert!(
        got["created_at"]
            .as_str()
            .is_some_and(|t| t.starts_with(&year) && t.ends_with('Z')),
        "{got}"
    );

    let out = avocet(&["status", "--addr", a, "--refresh"]).await;
    assert!(
        !stdout(&out).contains("--refresh reads"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("FAILED VERSIONS  ERROR"),
        "{}",
        stdout(&out)
    );
    let _ = d.stop.send(());
}
