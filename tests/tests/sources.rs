//! Tenant sources: a fleet's `dsn_template` with per-tenant variables, and tenants registered
//! through the API, each feeding a rollout; registrations survive a restart, and an id is
//! unique within its fleet whatever its source.

use anyhow::{Context, ensure};
use avocet_tests::{FLEET, Fleet, TestDaemon, pb, sample_dir, scenarios::assert_latest_schema};

/// The configuration of a daemon over `fleet` on its dialect's sample set.
fn sample_config(fleet: &Fleet) -> anyhow::Result<avocet_daemon::Config> {
    TestDaemon::config(
        fleet,
        &sample_dir(fleet.dialect),
        std::time::Duration::from_secs(5),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dsn_template_with_per_tenant_vars_feeds_a_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(3).await?;
    let mut config = sample_config(&fleet)?;
    let fc = config.fleets.get_mut(FLEET).context("fleet")?;
    // `postgres://postgres@127.0.0.1:5432/<database>` becomes the server part of the
    // template and a `db` variable per tenant; no tenant keeps a DSN of its own.
    let (server, _) = fleet.tenants[0].dsn.rsplit_once('/').context("dsn")?;
    fc.dsn_template = Some(format!("{server}/{{db}}"));
    for t in &mut fc.tenants {
        let (_, db) = t.dsn.rsplit_once('/').context("dsn")?;
        t.vars = [("db".to_owned(), db.to_owned())].into();
        t.dsn.clear();
    }
    let daemon = TestDaemon::start_with(config).await?;
    let run = daemon.apply_all().await?;
    let finished = run.finished().context("not finished")?;
    ensure!(finished.succeeded == 3, "{finished:?}");
    for i in 0..3 {
        assert_latest_schema(&fleet, i).await?;
    }
    daemon.stop().await
}

/// A daemon over `fleet` (SQLite) whose control store is the file in `store`, so a second
/// daemon on the same directory finds what the first stored.
async fn daemon_on(fleet: &Fleet, store: &std::path::Path) -> anyhow::Result<TestDaemon> {
    let mut config = sample_config(fleet)?;
    config.control_store = format!("sqlite://{}/control.db?mode=rwc", store.display());
    TestDaemon::start_with(config).await
}

fn registration(tenant: &str, dsn: &str) -> pb::RegisterTenantRequest {
    pb::RegisterTenantRequest {
        fleet: FLEET.into(),
        tenant: tenant.into(),
        dsn: dsn.into(),
        schema: String::new(),
        labels: [("region".to_owned(), "eu".to_owned())].into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_tenants_feed_rollouts_and_survive_a_restart() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let dir = tempfile::tempdir()?;
    // Registered files live in the fleet's sqlite_root.
    let r01 = fleet.sqlite_dir().context("dir")?.join("r01.db");
    let r01_dsn = format!("sqlite://{}?mode=rwc", r01.display());
    let daemon = daemon_on(&fleet, dir.path()).await?;
    let mut client = daemon.client();

    let info = client
        .register_tenant(registration("r01", &r01_dsn))
        .await?;
    ensure!(
        info.source == "api" && info.labels["region"] == "eu",
        "{info:?}"
    );
    let got = client.get_tenant(FLEET, "r01").await?;
    ensure!(got.source == "api", "{got:?}");
    ensure!(client.get_tenant(FLEET, "t00").await?.source == "config");

    // An id the fleet has from either source is refused, and so is a bad id or a DSN of
    // another dialect, which creates nothing.
    let err = client
        .register_tenant(registration("t00", &r01_dsn))
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::AlreadyExists), "{err}");
    ensure!(err.to_string().contains("configuration"), "{err}");
    let err = client
        .register_tenant(registration("r01", &r01_dsn))
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::AlreadyExists), "{err}");
    let err = client
        .register_tenant(registration("../r02", &r01_dsn))
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::InvalidArgument), "{err}");
    // Another dialect's DSN is refused by its scheme (without a password, so the
    // password rule does not answer first), and nothing is made of it on disk.
    let err = client
        .register_tenant(registration("r02", "postgres://u@127.0.0.1:5432/db"))
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::InvalidArgument), "{err}");
    ensure!(err.to_string().contains("scheme is not sqlite's"), "{err}");
    ensure!(!std::path::Path::new("postgres:").exists());
    let err = client
        .register_tenant(registration(
            "r02",
            "postgres://u:s3cretPW@127.0.0.1:5432/db",
        ))
        .await
        .unwrap_err();
    ensure!(err.code() == Some(tonic::Code::InvalidArgument), "{err}");
    ensure!(!err.to_string().contains("s3cretPW"), "{err}");

    let run = daemon.apply_all().await?;
    let finished = run.finished().context("not finished")?;
    ensure!(finished.succeeded == 3, "{finished:?}");
    ensure!(run.tenant("r01").and_then(|t| t.error.clone()).is_none());
    ensure!(r01.exists(), "the registered tenant was not migrated");
    daemon.stop().await?;

    // A second daemon on the same control store has the tenant, can remove it, and does
    // not bring it back after another start; a configured tenant cannot be removed.
    let daemon = daemon_on(&fleet, dir.path()).await?;
    let mut client = daemon.client();
    ensure!(client.get_tenant(FLEET, "r01").await?.source == "api");
    let status = daemon.known_status().await?;
    ensure!(status.tenant_count == 3, "{status:?}");
    let err = client.deregister_tenant(FLEET, "t00").await.unwrap_err();
    ensure!(err.code() == Some(tonic::Code::FailedPrecondition), "{err}");
    client.deregister_tenant(FLEET, "r01").await?;
    let err = client.get_tenant(FLEET, "r01").await.unwrap_err();
    ensure!(err.code() == Some(tonic::Code::NotFound), "{err}");
    daemon.stop().await?;
    let daemon = daemon_on(&fleet, dir.path()).await?;
    let listed = daemon
        .client()
        .list_tenants(pb::ListTenantsRequest {
            fleet: FLEET.into(),
            selector: None,
        })
        .await?;
    ensure!(listed.tenants.len() == 2, "{listed:?}");
    daemon.stop().await
}

/// A registered id that the configuration takes later is left out at start, and the
/// configured tenant is the one the fleet has.
#[tokio::test(flavor = "multi_thread")]
async fn a_registered_id_now_in_the_configuration_is_left_out() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let dir = tempfile::tempdir()?;
    let mut only_first = Fleet::sqlite(0).await?;
    only_first.tenants = fleet.tenants[..1].to_vec();
    let daemon = daemon_on(&only_first, dir.path()).await?;
    daemon
        .client()
        .register_tenant(registration("t01", &fleet.tenants[1].dsn))
        .await?;
    daemon.stop().await?;
    let daemon = daemon_on(&fleet, dir.path()).await?;
    let t01 = daemon.client().get_tenant(FLEET, "t01").await?;
    ensure!(t01.source == "config", "{t01:?}");
    let status = daemon.known_status().await?;
    ensure!(status.tenant_count == 2, "{status:?}");
    daemon.stop().await
}

/// A discovery query against a real catalog table on PostgreSQL feeds a rollout, and a
/// refresh adds, changes and removes tenants; a row with an id the fleet has from the API,
/// or a bad id, is left out and reported.
#[tokio::test(flavor = "multi_thread")]
async fn a_discovery_query_feeds_a_rollout_and_refreshes() -> anyhow::Result<()> {
    // Databases 0-2 are tenants; database 3 holds the catalog.
    let fleet = Fleet::postgres(4).await?;
    fleet
        .exec(
            3,
            "CREATE TABLE tenants (id text, dsn text, labels jsonb, active bool)",
        )
        .await?;
    let row = |i: usize, region: &str| {
        format!(
            "INSERT INTO tenants VALUES ('d{i}', '{}', '{{\"region\": \"{region}\"}}', true)",
            fleet.tenants[i].dsn
        )
    };
    fleet.exec(3, &row(0, "eu")).await?;
    fleet.exec(3, &row(1, "us")).await?;
    let mut config = sample_config(&fleet)?;
    let fc = config.fleets.get_mut(FLEET).context("fleet")?;
    fc.tenants.clear();
    fc.discovery = Some(avocet_daemon::config::DiscoveryConfig {
        dsn: fleet.tenants[3].dsn.clone(),
        query: "SELECT id, dsn, labels FROM tenants WHERE active".into(),
        refresh: std::time::Duration::from_secs(3600),
        timeout: std::time::Duration::from_secs(5),
    });
    let daemon = TestDaemon::start_with(config).await?;
    let mut client = daemon.client();
    let d0 = client.get_tenant(FLEET, "d0").await?;
    ensure!(
        d0.source == "discovery" && d0.labels["region"] == "eu",
        "{d0:?}"
    );

    let run = daemon.apply_all().await?;
    ensure!(run.finished().context("finished")?.succeeded == 2);
    for i in 0..2 {
        assert_latest_schema(&fleet, i).await?;
    }

    // A third tenant, a changed label, a removed row, one that collides with a registered
    // id, and a bad id.
    fleet.exec(3, &row(2, "ap")).await?;
    fleet
        .exec(
            3,
            "UPDATE tenants SET labels = '{\"region\": \"sa\"}' WHERE id = 'd0'",
        )
        .await?;
    fleet
        .exec(3, "UPDATE tenants SET active = false WHERE id = 'd1'")
        .await?;
    client
        .register_tenant(registration("r9", &fleet.tenants[2].dsn))
        .await?;
    fleet
        .exec(
            3,
            "INSERT INTO tenants VALUES ('r9', 'postgres://x/y', NULL, true)",
        )
        .await?;
    fleet
        .exec(
            3,
            "INSERT INTO tenants VALUES ('../bad', 'postgres://x/y', NULL, true)",
        )
        .await?;
    let r = client.refresh_tenants(FLEET).await?;
    ensure!(
        r.added == ["d2"] && r.changed == ["d0"] && r.removed == ["d1"],
        "{r:?}"
    );
    ensure!(r.rejected.len() == 2, "{r:?}");
    ensure!(r.rejected.iter().any(|why| why.contains("API")), "{r:?}");
    ensure!(client.get_tenant(FLEET, "r9").await?.source == "api");
    ensure!(client.get_tenant(FLEET, "d0").await?.labels["region"] == "sa");
    let err = client.get_tenant(FLEET, "d1").await.unwrap_err();
    ensure!(err.code() == Some(tonic::Code::NotFound), "{err}");
    let run = daemon.apply_all().await?;
    let finished = run.finished().context("finished")?;
    ensure!(finished.succeeded == 3, "{finished:?}");
    assert_latest_schema(&fleet, 2).await?;
    daemon.stop().await
}
