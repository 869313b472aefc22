//! Requests built from hostile inputs (quotes, semicolons, `../`, NUL bytes, 300-character
//! names, unicode look-alikes, empty strings) each get a clean `INVALID_ARGUMENT`, and no
//! tenant database is touched.

use anyhow::ensure;
use avocet_tests::{FLEET, Fleet, TestDaemon, pb, sample_dir};

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

fn long() -> String {
    "t".repeat(300)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_invalid_arguments_and_touch_nothing() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let daemon = TestDaemon::start(
        &fleet,
        &sample_dir(fleet.dialect),
        std::time::Duration::from_secs(5),
    )
    .await?;
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
            version: 1,
            action: pb::RepairAction::MarkApplied as i32,
        };
        invalid(client.repair(repair).await.map(drop), "repair")?;
    }
    // Nothing ran: no rollout was stored and no tenant database was created.
    let rollouts = client
        .list_rollouts(pb::ListRolloutsRequest::default())
        .await?;
    ensure!(rollouts.rollouts.is_empty(), "{rollouts:?}");
    for t in &fleet.tenants {
        let path = t
            .dsn
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default();
        ensure!(!std::path::Path::new(path).exists(), "{path} was created");
    }
    ensure!(!std::path::Path::new("x.db").exists());
    daemon.stop().await
}
