//! Tenant sources: a fleet's `dsn_template` with per-tenant variables feeds a rollout.

use anyhow::{Context, ensure};
use avocet_tests::{FLEET, Fleet, TestDaemon, sample_dir, scenarios::assert_latest_schema};

#[tokio::test(flavor = "multi_thread")]
async fn dsn_template_with_per_tenant_vars_feeds_a_rollout() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(3).await?;
    let mut config = TestDaemon::config(
        &fleet,
        &sample_dir(fleet.dialect),
        std::time::Duration::from_secs(5),
    )?;
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
