//! Writing and checking a set: `avocet new`, plans of strategies and large files, `repair`.

use super::*;

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
