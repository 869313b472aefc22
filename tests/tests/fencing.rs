//! Fenced leases: a replica that stalls past its lease (here SIGSTOPped) loses its tenants
//! to another replica, and when it wakes up its late writes are refused: the rollout's
//! counters match the tenants' history tables, each tenant counted once, each migration
//! applied once.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use avocet_client::RolloutRecord;
use avocet_tests::{
    Daemon, Fleet, MigrationCopy, free_port, pb, scenarios::every_tenant_done, start_detached,
};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// Tenants in the fleet (databases: each tenant's lock is its own), enough for both
/// replicas to claim some (a claim takes up to 8, and each runs 8 at once).
const TENANTS: usize = 16;

/// Writes replica `name`'s configuration in `dir` and starts it, its log in `name.log`.
async fn replica(
    name: &str,
    dir: &Path,
    fleet: &Fleet,
    control: &Fleet,
    set: &MigrationCopy,
) -> anyhow::Result<(Daemon, PathBuf)> {
    let port = free_port()?;
    let tenants: Vec<String> = fleet
        .tenants
        .iter()
        .map(|t| format!("  {{ id = \"{}\", dsn = \"{}\" }},", t.id, t.dsn))
        .collect();
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\ninstance_id = \"{name}\"\n\
         control_store = \"{}\"\nlease_timeout = \"2s\"\nshutdown_grace = \"20s\"\n\
         [fleets.test]\ndialect = \"postgres\"\nmigrations = \"{}\"\nconcurrency = 8\n\
         lock_timeout = \"60s\"\ntenants = [\n{}\n]\n",
        control.tenants[0].dsn,
        set.path().display(),
        tenants.join("\n")
    );
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text)?;
    let log = dir.join(format!("{name}.log"));
    Ok((
        Daemon::start_logging_to(AVOCETD, &config, port, &log).await?,
        log,
    ))
}

/// Tenants whose work item replica `owner` holds now, read from the control store.
async fn held_by(control: &Fleet, owner: &str) -> anyhow::Result<Vec<String>> {
    let held = control
        .scalar(
            0,
            &format!(
                "SELECT COALESCE(string_agg(tenant, ',' ORDER BY tenant), '') \
                 FROM rollout_tenants WHERE state = 'running' AND lease_owner LIKE '{owner}/%'"
            ),
        )
        .await?
        .unwrap_or_default();
    Ok(held
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_stopped_past_its_lease_has_its_late_writes_refused() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(TENANTS).await?;
    let control = Fleet::postgres(1).await?;
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    set.write("0002_slow.up.sql", "SELECT pg_sleep(3);")?;
    set.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
    let dir = tempfile::tempdir()?;
    let (a, a_log) = replica("replica-a", dir.path(), &fleet, &control, &set).await?;
    let (b, _) = replica("replica-b", dir.path(), &fleet, &control, &set).await?;
    let id = start_detached(&mut a.client().await?).await?;

    // A holds tenants in their slow migration: stop it past its lease (2 s) for 6 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopped = loop {
        let held = held_by(&control, "replica-a").await?;
        if !held.is_empty() {
            break held;
        }
        if Instant::now() > deadline {
            let rows = control
                .scalar(
                    0,
                    "SELECT string_agg(tenant || ':' || state || ':' || COALESCE(lease_owner, '-'), ' ') \
                     FROM rollout_tenants",
                )
                .await?;
            anyhow::bail!("replica A never held a tenant: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal("STOP")?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Meanwhile B took A's tenants over (their leases ran out on the store's clock).
    let epochs = control
        .scalar(
            0,
            &format!(
                "SELECT MIN(lease_epoch)::text FROM rollout_tenants WHERE tenant IN ({})",
                stopped
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await?
        .context("no epochs")?;
    a.signal("CONT")?;
    ensure!(
        epochs.parse::<i64>()? >= 2,
        "A's tenants {stopped:?} were not claimed again while it was stopped (epoch {epochs})"
    );

    let mut on_b = b.client().await?;
    let record = tokio::time::timeout(
        Duration::from_secs(120),
        RolloutRecord::collect(on_b.watch(&id, 0).await?),
    )
    .await
    .context("the rollout did not end within 120 s")??;
    let finished = record.finished().context("no RolloutFinished")?.clone();
    let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
    for e in &record.events {
        if let Some(pb::rollout_event::Kind::TenantFinished(t)) = &e.kind {
            *per_tenant.entry(t.tenant.clone()).or_default() += 1;
        }
    }
    ensure!(
        per_tenant.len() == TENANTS && per_tenant.values().all(|&n| n == 1),
        "TenantFinished per tenant: {per_tenant:?}"
    );
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32
            && finished.succeeded == TENANTS as u32
            && finished.failed + finished.skipped == 0,
        "{finished:?}"
    );
    let stored = on_b.rollout(&id).await?;
    ensure!(
        (stored.succeeded, stored.failed, stored.skipped) == (TENANTS as u32, 0, 0),
        "{stored:?}"
    );
    // Every tenant's history: each version applied once, whoever ran it.
    every_tenant_done(&fleet, 3, &["a", "b"]).await?;

    // A woke up, finished what it held, and was told it lost them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(&a_log)?;
        if log.contains("lost lease") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "replica A never logged a lost lease:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((a, b));
    Ok(())
}
