//! The README's flow, exit statuses, what `apply` says before it acts, and tokens.

use super::*;

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
