//! Requests built from hostile inputs (quotes, semicolons, `../`, NUL bytes, 300-character
//! names, unicode look-alikes, empty strings) each get a clean `INVALID_ARGUMENT`, and no
//! tenant database is touched.

use anyhow::ensure;
use avocet_tests::{FLEET, Fleet, TestDaemon, pb};

const HOSTILE: [&str; 9] = [
    "",
    "t00'; DROP TABLE accounts; --",
    "t00;t01",
    "../../etc/passwd",
    "t00\0",
    "tоо", // Cyrillic о, a look-alike of "too"
    " t00",
    "-t00",
    "$(rm -rf /)",
];

/// No tenant database file of `fleet` was created: nothing connected to any tenant.
fn untouched(fleet: &Fleet) -> anyhow::Result<()> {
    for t in &fleet.tenants {
        let path = t.dsn.trim_start_matches("sqlite://");
        let path = path.split('?').next().unwrap_or_default();
        ensure!(!std::path::Path::new(path).exists(), "{path} was created");
    }
    Ok(())
}

fn long() -> String {
    "t".repeat(300)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_invalid_arguments_and_touch_nothing() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let daemon = TestDaemon::sample(&fleet, std::time::Duration::from_secs(5)).await?;
    let mut client = daemon.client();
    let long = long();
    for bad in HOSTILE.iter().copied().chain([long.as_str()]) {
        let invalid =
            |r: Result<(), avocet_client::ClientError>, what: &str| -> anyhow::Result<()> {
                let err = r
                    .err()
                    .ok_or_else(|| anyhow::anyhow!("{what} {bad:?} was accepted"))?;
                ensure!(
                    err.code() == Some(tonic::Code::InvalidArgument),
                    "{what} {bad:?}: {err}"
                );
                Ok(())
            };
        let apply = |fleet: &str, ids: Vec<String>| pb::ApplyRequest {
            fleet: fleet.into(),
            selector: Some(pb::TenantSelector {
                tenant_ids: ids,
                labels: String::new(),
            }),
            ..Default::default()
        };
        invalid(
            client.apply(apply(bad, Vec::new())).await.map(drop),
            "apply on fleet",
        )?;
        invalid(
            client.apply(apply(FLEET, vec![bad.into()])).await.map(drop),
            "apply on tenant",
        )?;
        invalid(client.get_tenant(FLEET, bad).await.map(drop), "get_tenant")?;
        let register = pb::RegisterTenantRequest {
            fleet: FLEET.into(),
            tenant: bad.into(),
            dsn: "sqlite://x.db?mode=rwc".into(),
            ..Default::default()
        };
        invalid(client.register_tenant(register).await.map(drop), "register")?;
        let repair = pb::RepairRequest {
            fleet: FLEET.into(),
            tenant: bad.into(),
            version: Some(1.into()),
            action: pb::RepairAction::MarkApplied as i32,
            ..Default::default()
        };
        invalid(client.repair(repair).await.map(drop), "repair")?;
    }
    // Nothing ran: no rollout was stored and no tenant database was created.
    let rollouts = client
        .list_rollouts(pb::ListRolloutsRequest::default())
        .await?;
    ensure!(rollouts.rollouts.is_empty(), "{rollouts:?}");
    untouched(&fleet)?;
    ensure!(!std::path::Path::new("x.db").exists());
    daemon.stop().await
}

/// Values out of range (versions, durations, page sizes, selectors, strategies, ids, DSNs)
/// are `INVALID_ARGUMENT`, a message above `[limits] max_message_bytes` is
/// `RESOURCE_EXHAUSTED`, and none of them touches a tenant.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_are_refused_before_any_tenant_is_touched() -> anyhow::Result<()> {
    use tonic::Code;
    let fleet = Fleet::sqlite(2).await?;
    let daemon = TestDaemon::sample(&fleet, std::time::Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    let plan = |f: &dyn Fn(&mut pb::PlanRequest)| {
        let mut req = pb::PlanRequest {
            fleet: FLEET.into(),
            ..Default::default()
        };
        f(&mut req);
        req
    };
    let strategy = |f: &dyn Fn(&mut pb::Strategy)| {
        let mut s = pb::Strategy::default();
        f(&mut s);
        pb::ApplyRequest {
            fleet: FLEET.into(),
            strategy: Some(s),
            ..Default::default()
        }
    };
    let mut cases: Vec<(&str, Result<(), avocet_client::ClientError>, Code)> = Vec::new();
    for selector in [
        "region=eu'; DROP TABLE x; --",
        "a in (",
        "=x",
        "a!!b",
        "tier notin",
    ] {
        let req = plan(&|r| {
            r.selector = Some(pb::TenantSelector {
                tenant_ids: Vec::new(),
                labels: selector.into(),
            })
        });
        cases.push((
            "label selector",
            c.plan(req).await.map(drop),
            Code::InvalidArgument,
        ));
    }
    let long_label = format!("{}=x", "k".repeat(300));
    let req = plan(&|r| {
        r.selector = Some(pb::TenantSelector {
            tenant_ids: Vec::new(),
            labels: long_label.clone(),
        })
    });
    cases.push((
        "300-character label",
        c.plan(req).await.map(drop),
        Code::InvalidArgument,
    ));
    for v in [-1, i64::MIN] {
        let req = plan(&|r| r.target_version = Some(v.into()));
        cases.push((
            "negative target",
            c.plan(req).await.map(drop),
            Code::InvalidArgument,
        ));
        let repair = pb::RepairRequest {
            fleet: FLEET.into(),
            tenant: "t00".into(),
            version: Some(v.into()),
            action: pb::RepairAction::MarkApplied as i32,
            ..Default::default()
        };
        cases.push((
            "negative repair version",
            c.repair(repair).await.map(drop),
            Code::InvalidArgument,
        ));
        let rollback = pb::RollbackRequest {
            fleet: FLEET.into(),
            target: Some(pb::rollback_request::Target::ToVersion(v.into())),
            ..Default::default()
        };
        cases.push((
            "negative rollback target",
            c.rollback(rollback).await.map(drop),
            Code::InvalidArgument,
        ));
    }
    let req = plan(&|r| r.target_version = Some(i64::MAX.into()));
    cases.push((
        "overflowing target",
        c.plan(req).await.map(drop),
        Code::InvalidArgument,
    ));
    let req = plan(&|r| r.page_size = u32::MAX);
    cases.push((
        "page size",
        c.plan(req).await.map(drop),
        Code::InvalidArgument,
    ));
    let req = plan(&|r| r.page_token = "../../etc/passwd".into());
    cases.push((
        "page token",
        c.plan(req).await.map(drop),
        Code::InvalidArgument,
    ));
    let status = pb::StatusRequest {
        fleet: FLEET.into(),
        refresh: true,
        refresh_timeout_ms: u64::MAX,
        ..Default::default()
    };
    cases.push((
        "refresh timeout",
        c.status(status).await.map(drop),
        Code::InvalidArgument,
    ));
    let list = pb::ListRolloutsRequest {
        page_size: 1_000_000,
        ..Default::default()
    };
    cases.push((
        "rollouts page",
        c.list_rollouts(list).await.map(drop),
        Code::InvalidArgument,
    ));
    for (what, req) in [
        ("zero concurrency", strategy(&|s| s.concurrency = Some(0))),
        ("negative wave", strategy(&|s| s.wave_size = "-5".into())),
        (
            "wave above 100%",
            strategy(&|s| s.wave_size = "250%".into()),
        ),
        (
            "failures not a number",
            strategy(&|s| s.max_failures = "lots".into()),
        ),
        (
            "a pause of centuries",
            strategy(&|s| s.pause_between_waves_ms = Some(u64::MAX)),
        ),
    ] {
        cases.push((what, c.apply(req).await.map(drop), Code::InvalidArgument));
    }
    for id in ["", "../x", "00000000-0000-0000-0000-00000000000'", "\0"] {
        cases.push((
            "rollout id",
            c.rollout(id).await.map(drop),
            Code::InvalidArgument,
        ));
        cases.push((
            "watched id",
            c.watch(id, 0).await.map(drop),
            Code::InvalidArgument,
        ));
    }
    for dsn in [
        "postgres://postgres:s3cretPW@127.0.0.1:5432/x",
        "http://example.com/x",
        "sqlite://../../../tmp/x.db?mode=rwc\0",
        "sqlite://data/../../../tmp/x.db?mode=rwc",
    ] {
        let register = pb::RegisterTenantRequest {
            fleet: FLEET.into(),
            tenant: "t99".into(),
            dsn: dsn.into(),
            ..Default::default()
        };
        let got = c.register_tenant(register).await;
        if let Err(e) = &got {
            ensure!(!e.to_string().contains("s3cretPW"), "{e}");
        }
        cases.push(("registered DSN", got.map(drop), Code::InvalidArgument));
    }
    // 80,000 ids of 64 characters: 5 MiB, above the 4 MiB default limit.
    let ids: Vec<String> = (0..80_000).map(|i| format!("t{i:063}")).collect();
    let huge = plan(&|r| {
        r.selector = Some(pb::TenantSelector {
            tenant_ids: ids.clone(),
            labels: String::new(),
        })
    });
    cases.push((
        "5 MiB message",
        c.plan(huge).await.map(drop),
        Code::ResourceExhausted,
    ));
    ensure!(cases.len() >= 30, "{} cases", cases.len());
    for (what, got, want) in cases {
        let code = got.as_ref().err().and_then(|e| e.code());
        ensure!(code == Some(want), "{what}: {want:?} expected, got {got:?}");
    }
    // Nothing ran and nothing was created.
    let rollouts = c.list_rollouts(pb::ListRolloutsRequest::default()).await?;
    ensure!(rollouts.rollouts.is_empty(), "{rollouts:?}");
    let tenants = c
        .list_tenants(pb::ListTenantsRequest {
            fleet: FLEET.into(),
            ..Default::default()
        })
        .await?;
    ensure!(tenants.tenants.len() == 2, "{tenants:?}");
    untouched(&fleet)?;
    daemon.stop().await
}
