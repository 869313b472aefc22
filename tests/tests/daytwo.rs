//! Day-two commands on real SQLite and PostgreSQL tenants: Baseline records versions
//! without running them, only on tenants with no history; Repair accepts an intended edit's
//! checksum and forgets a version whose file is gone, each logged, each refused when the
//! record is not in the state it needs, each a no-op when repeated, on one tenant or on the
//! tenants a selector chooses; a failed transactional migration whose file was removed is
//! diagnosed as having left nothing behind.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_client::Client;
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb};
use tonic::Code;

/// Four migrations, each creating one table.
fn four() -> anyhow::Result<MigrationCopy> {
    let set = MigrationCopy::empty()?;
    for (v, t) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        set.write(
            &format!("000{v}_{t}.up.sql"),
            &format!("CREATE TABLE {t} (id int);"),
        )?;
        set.write(&format!("000{v}_{t}.down.sql"), &format!("DROP TABLE {t};"))?;
    }
    Ok(set)
}

fn diagnostics(v: &pb::VerifyResponse, tenant: &str) -> Vec<(String, Option<i64>)> {
    v.tenants
        .iter()
        .filter(|t| t.tenant == tenant)
        .flat_map(|t| {
            t.diagnostics
                .iter()
                .map(|d| (d.code.clone(), d.version.int()))
        })
        .collect()
}

async fn verify(c: &mut Client) -> anyhow::Result<pb::VerifyResponse> {
    Ok(c.verify(pb::VerifyRequest {
        fleet: FLEET.into(),
        ..Default::default()
    })
    .await?)
}

async fn repair(
    c: &mut Client,
    tenant: &str,
    version: i64,
    action: pb::RepairAction,
) -> Result<pb::RepairResponse, avocet_client::ClientError> {
    c.repair(pb::RepairRequest {
        fleet: FLEET.into(),
        tenant: tenant.into(),
        version: Some(version.into()),
        action: action as i32,
        ..Default::default()
    })
    .await
}

async fn baseline_then_repairs(fleet: Fleet) -> anyhow::Result<()> {
    let set = four()?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    let baseline = |to: i64| pb::BaselineRequest {
        fleet: FLEET.into(),
        selector: None,
        to_version: Some(to.into()),
        ..Default::default()
    };
    // Baseline to 2: two records each, nothing run.
    let got = c.baseline(baseline(2)).await?;
    ensure!(
        got.tenants
            .iter()
            .all(|t| t.baselined == 2 && t.error.is_empty()),
        "{got:?}"
    );
    let bad = c.baseline(baseline(9)).await;
    ensure!(bad.err().and_then(|e| e.code()) == Some(Code::InvalidArgument));
    let run = daemon.apply_all().await?;
    ensure!(
        run.finished().context("finished")?.migrations_run == 4,
        "{run:?}"
    );
    for i in 0..2 {
        let tables = fleet.objects(i, "BASE TABLE").await?;
        ensure!(tables.contains("c") && tables.contains("d"), "{tables:?}");
        ensure!(
            !tables.contains("a") && !tables.contains("b"),
            "baselined versions ran: {tables:?}"
        );
        let versions: Vec<i64> = fleet.history(i).await?.iter().map(|h| h.0).collect();
        ensure!(versions == [1, 2, 3, 4], "{versions:?}");
    }
    // A tenant with history is not baselined again.
    let again = c.baseline(baseline(4)).await?;
    ensure!(
        again
            .tenants
            .iter()
            .all(|t| t.baselined == 0 && t.error.contains("history record(s) already")),
        "{again:?}"
    );

    // An intended edit of applied version 3: drift, accepted on t00 only.
    set.write(
        "0003_c.up.sql",
        "-- c, documented\nCREATE TABLE c (id int);",
    )?;
    let v = verify(&mut c).await?;
    ensure!(
        diagnostics(&v, "t00").contains(&("checksum_mismatch".into(), Some(3))),
        "{v:?}"
    );
    let h = c.history(FLEET, "t00").await?;
    let drifted: Vec<i64> = h
        .records
        .iter()
        .filter(|r| r.drift)
        .map(|r| r.version.int().unwrap_or_default())
        .collect();
    ensure!(drifted == [3], "{h:?}");
    // Version 2's file matches its record: already as asked, nothing written.
    let none = repair(&mut c, "t00", 2, pb::RepairAction::AcceptChecksum).await?;
    ensure!(
        none.previous_status == "applied" && !none.tenants[0].changed,
        "{none:?}"
    );
    let accepted = repair(&mut c, "t00", 3, pb::RepairAction::AcceptChecksum).await?;
    ensure!(accepted.previous_status == "applied", "{accepted:?}");
    let v = verify(&mut c).await?;
    ensure!(diagnostics(&v, "t00").is_empty(), "{v:?}");
    ensure!(diagnostics(&v, "t01").contains(&("checksum_mismatch".into(), Some(3))));
    ensure!(
        fleet.log_count(0, 3, "applied").await? == 2,
        "the acceptance is logged"
    );

    // Version 4's file removed on purpose: missing, then forgotten on t00.
    std::fs::remove_file(set.path().join("0004_d.up.sql"))?;
    std::fs::remove_file(set.path().join("0004_d.down.sql"))?;
    let v = verify(&mut c).await?;
    ensure!(
        diagnostics(&v, "t00").contains(&("missing_migration".into(), Some(4))),
        "{v:?}"
    );
    let still_there = repair(&mut c, "t00", 3, pb::RepairAction::Forget).await;
    ensure!(still_there.err().and_then(|e| e.code()) == Some(Code::FailedPrecondition));
    let forgot = repair(&mut c, "t00", 4, pb::RepairAction::Forget).await?;
    ensure!(forgot.previous_status == "applied", "{forgot:?}");
    let v = verify(&mut c).await?;
    ensure!(diagnostics(&v, "t00").is_empty(), "{v:?}");
    let history = fleet.history(0).await?;
    ensure!(
        history.iter().any(|h| h.0 == 4 && h.1 == "rolled_back"),
        "{history:?}"
    );
    ensure!(
        fleet.log_count(0, 4, "rolled_back").await? == 1,
        "the forget is logged"
    );

    // The same forget again is a no-op, not an error, and writes nothing.
    let again = repair(&mut c, "t00", 4, pb::RepairAction::Forget).await?;
    ensure!(
        again.previous_status == "rolled_back" && !again.tenants[0].changed,
        "{again:?}"
    );
    ensure!(fleet.log_count(0, 4, "rolled_back").await? == 1);
    // Neither a tenant nor a selector is a bad request, never the whole fleet.
    let neither = pb::RepairRequest {
        fleet: FLEET.into(),
        version: Some(4.into()),
        action: pb::RepairAction::Forget as i32,
        ..Default::default()
    };
    let refused = c.repair(neither.clone()).await;
    ensure!(refused.err().and_then(|e| e.code()) == Some(Code::InvalidArgument));
    // Over the whole fleet (an empty selector): t00 unchanged, t01 forgotten.
    let all = c
        .repair(pb::RepairRequest {
            selector: Some(pb::TenantSelector::default()),
            ..neither
        })
        .await?;
    let outcome = |r: &pb::RepairResponse| -> Vec<(String, String, bool, bool)> {
        r.tenants
            .iter()
            .map(|t| {
                let refused = !t.error.is_empty();
                (
                    t.tenant.clone(),
                    t.previous_status.clone(),
                    t.changed,
                    refused,
                )
            })
            .collect()
    };
    ensure!(
        outcome(&all)
            == [
                ("t00".into(), "rolled_back".into(), false, false),
                ("t01".into(), "applied".into(), true, false),
            ],
        "{all:?}"
    );
    let h = c.history(FLEET, "t01").await?;
    ensure!(h.records.iter().all(|r| !r.missing), "{h:?}");

    // A failed rollback undone by hand leaves an applied record: marked rolled back on the
    // tenants a selector names, it is pending again.
    let only_t01 = pb::TenantSelector {
        tenant_ids: vec!["t01".into()],
        ..Default::default()
    };
    let mark = |action: pb::RepairAction| pb::RepairRequest {
        fleet: FLEET.into(),
        version: Some(3.into()),
        action: action as i32,
        selector: Some(only_t01.clone()),
        ..Default::default()
    };
    let marked = c.repair(mark(pb::RepairAction::MarkRolledBack)).await?;
    ensure!(
        outcome(&marked) == [("t01".into(), "applied".into(), true, false)],
        "{marked:?}"
    );
    let h = c.history(FLEET, "t01").await?;
    ensure!(h.pending_versions.contains(&3.into()), "{h:?}");
    // Marking it applied now is refused for that tenant (it never ran since), not the call.
    let refused = c.repair(mark(pb::RepairAction::MarkApplied)).await?;
    ensure!(
        outcome(&refused) == [("t01".into(), String::new(), false, true)]
            && refused.tenants[0]
                .error
                .contains("no failed or running record"),
        "{refused:?}"
    );
    // Naming one tenant and a selector at once is a bad request.
    let both = c
        .repair(pb::RepairRequest {
            tenant: "t00".into(),
            ..mark(pb::RepairAction::MarkRolledBack)
        })
        .await;
    ensure!(both.err().and_then(|e| e.code()) == Some(Code::InvalidArgument));
    daemon.stop().await
}

/// A migration that fails inside a transaction left nothing behind: after its file is
/// removed, verify warns (it does not say "partially applied" or block an apply), and once
/// forgotten the tenant's history shows nothing missing.
async fn failed_then_removed(fleet: Fleet) -> anyhow::Result<()> {
    let set = four()?;
    set.write("0005_boom.up.sql", "INSERT INTO nowhere VALUES (1);")?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    let run = daemon.apply_all().await?;
    ensure!(
        run.tenant("t00").is_some_and(|t| t.error.is_some()),
        "{run:?}"
    );
    let history = fleet.history(0).await?;
    ensure!(
        history.iter().any(|h| h.0 == 5 && h.1 == "failed"),
        "{history:?}"
    );
    std::fs::remove_file(set.path().join("0005_boom.up.sql"))?;
    let v = verify(&mut c).await?;
    let t00 = v
        .tenants
        .iter()
        .find(|t| t.tenant == "t00")
        .context("t00")?;
    let five: Vec<_> = t00
        .diagnostics
        .iter()
        .filter(|d| d.version.int() == Some(5))
        .collect();
    ensure!(
        five.len() == 1
            && five[0].code == "failed_migration"
            && five[0].message.contains("left nothing behind")
            && five[0].message.contains("does not run again"),
        "{v:?}"
    );
    let plan = daemon.plan().await?;
    ensure!(
        plan.tenants.iter().all(|t| !t.blocked),
        "a failed transactional migration whose file is gone blocks nothing: {plan:?}"
    );
    repair(&mut c, "t00", 5, pb::RepairAction::Forget).await?;
    let h = c.history(FLEET, "t00").await?;
    ensure!(
        h.records.iter().all(|r| !r.missing && r.status != "failed"),
        "{h:?}"
    );
    ensure!(diagnostics(&verify(&mut c).await?, "t00").is_empty());
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_baseline_accept_checksum_and_forget() -> anyhow::Result<()> {
    baseline_then_repairs(Fleet::sqlite(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_baseline_accept_checksum_and_forget() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    baseline_then_repairs(fleet).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_failed_in_a_transaction_then_removed() -> anyhow::Result<()> {
    failed_then_removed(Fleet::sqlite(2).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_failed_in_a_transaction_then_removed() -> anyhow::Result<()> {
    failed_then_removed(Fleet::postgres(2).await?).await
}
