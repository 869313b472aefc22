//! Bad usage (exit 2), fleets to choose from, and what an operator reads.

use super::*;

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
