//! Destructive migrations: applies and rollbacks that need `--accept-data-loss`.

use super::*;

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
