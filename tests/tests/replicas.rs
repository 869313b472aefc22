//! Several `avocetd` replicas on one PostgreSQL control store share every rollout: tenants
//! are claimed under leases, any replica answers `Watch`, `Get` and `List` and takes
//! `Pause`, `Resume` and `Cancel`, and a replica that is SIGKILLed loses its tenants to the
//! others once its leases run out. Every tenant's history and schema are checked: each
//! migration applied exactly once, and by which replica.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use avocet_client::{Client, Control, RolloutRecord};
use avocet_tests::{
    Daemon, Fleet, MigrationCopy, free_port, pb, scenarios::every_tenant_done, start_detached,
    wait_for,
};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// The lease timeout the replicas run with.
const LEASE: Duration = Duration::from_secs(3);

/// Tenants in the fleet.
const TENANTS: usize = 300;

/// One test at a time: each runs two daemons over 300 tenants on one server, whose
/// `max_connections` (100 by default) the other test binaries share.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fleet of [`TENANTS`] schemas, a control store database of its own, and a set whose
/// second migration is slow enough for a rollout to be caught in the middle.
struct Setup {
    fleet: Fleet,
    /// Holds the control store's database, dropped with it.
    control: Fleet,
    set: MigrationCopy,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> anyhow::Result<Self> {
        let fleet = Fleet::postgres_schemas(TENANTS).await?;
        let control = Fleet::postgres(1).await?;
        let set = MigrationCopy::empty()?;
        set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
        set.write("0002_slow.up.sql", "SELECT pg_sleep(0.05);")?;
        set.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
        Ok(Self {
            fleet,
            control,
            set,
            dir: tempfile::tempdir()?,
        })
    }

    /// Writes replica `name`'s configuration (its own port, the shared store) and starts it.
    async fn replica(&self, name: &str) -> anyhow::Result<Daemon> {
        let port = free_port()?;
        let tenants: Vec<String> = self
            .fleet
            .tenants
            .iter()
            .map(|t| {
                format!(
                    "  {{ id = \"{}\", dsn = \"{}\", schema = \"{}\" }},",
                    t.id,
                    t.dsn,
                    t.schema.as_deref().unwrap_or_default()
                )
            })
            .collect();
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\ninstance_id = \"{name}\"\n\
             control_store = \"{}\"\nlease_timeout = \"{}ms\"\nshutdown_grace = \"20s\"\n\
             max_connections = 6\n\
             [fleets.test]\ndialect = \"postgres\"\nmigrations = \"{}\"\nconcurrency = 4\n\
             tenants = [\n{}\n]\n",
            self.control.tenants[0].dsn,
            LEASE.as_millis(),
            self.set.path().display(),
            tenants.join("\n")
        );
        let path: PathBuf = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Daemon::start(AVOCETD, &path, port).await
    }

    /// Every tenant has each version applied exactly once, both tables and no `running`
    /// row; returns how many tenants each replica (`applied_by`) migrated.
    async fn every_tenant_done_once(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        every_tenant_done(&self.fleet, 3, &["a", "b"]).await?;
        let mut by = BTreeMap::new();
        for i in 0..self.fleet.tenants.len() {
            let applied_by = self
                .fleet
                .scalar(
                    i,
                    "SELECT applied_by FROM avocet_migrations WHERE version = 3",
                )
                .await?
                .unwrap_or_default();
            *by.entry(applied_by).or_insert(0) += 1;
        }
        Ok(by)
    }
}

/// Follows rollout `id` on `client` from the start to its end.
async fn watch_to_the_end(client: &mut Client, id: &str) -> anyhow::Result<RolloutRecord> {
    Ok(RolloutRecord::collect(client.watch(id, 0).await?).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_a_rollout_and_either_steers_it() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let setup = Setup::new().await?;
    let a = setup.replica("replica-a").await?;
    let b = setup.replica("replica-b").await?;
    let (mut on_a, mut on_b) = (a.client().await?, b.client().await?);
    let id = start_detached(&mut on_a).await?;
    wait_for(&mut on_b, &id, 40).await?;

    // Paused through B, the replica that did not start it: no tenant starts anywhere.
    on_b.control(&id, Control::Pause).await?;
    let settled = paused_and_settled(&mut on_a, &id).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = on_a.rollout(&id).await?;
    ensure!(
        later.state == pb::RolloutState::Paused as i32,
        "not paused: {later:?}"
    );
    ensure!(
        later.succeeded == settled.succeeded && later.succeeded < TENANTS as u32,
        "tenants went on while paused: {} then {}",
        settled.succeeded,
        later.succeeded
    );

    // Resumed through A; B follows it to the end and both see the same events.
    on_a.control(&id, Control::Resume).await?;
    let seen_by_b = watch_to_the_end(&mut on_b, &id).await?;
    let finished = seen_by_b
        .finished()
        .context("no RolloutFinished on B")?
        .clone();
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32
            && finished.succeeded == TENANTS as u32
            && finished.failed == 0,
        "{finished:?}"
    );
    let seen_by_a = watch_to_the_end(&mut on_a, &id).await?;
    let seqs = |r: &RolloutRecord| r.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    ensure!(
        seqs(&seen_by_a) == seqs(&seen_by_b),
        "replicas disagree on the events"
    );
    let numbered: Vec<u64> = (1..=seen_by_a.events.len() as u64).collect();
    ensure!(
        seqs(&seen_by_a) == numbered,
        "events not numbered 1..n without gaps"
    );
    let starts = seen_by_a
        .events
        .iter()
        .filter(|e| matches!(e.kind, Some(pb::rollout_event::Kind::TenantFinished(_))))
        .count();
    ensure!(
        starts == TENANTS,
        "{starts} TenantFinished events for {TENANTS} tenants"
    );
    let listed = on_b
        .list_rollouts(pb::ListRolloutsRequest::default())
        .await?;
    ensure!(listed.rollouts.iter().any(|r| r.id == id), "{listed:?}");

    let by = setup.every_tenant_done_once().await?;
    eprintln!("migrated by {by:?}");
    ensure!(
        by.get("replica-a").copied().unwrap_or(0) > 0
            && by.get("replica-b").copied().unwrap_or(0) > 0,
        "one replica did all the work: {by:?}"
    );
    Ok(())
}

/// Polls rollout `id` until two readings 1 s apart both say `Paused` with the same count of
/// succeeded tenants (tenants in flight when the pause landed finish first; on a loaded
/// machine a control-store write can take seconds), for at most 60 s; returns the last.
async fn paused_and_settled(client: &mut Client, id: &str) -> anyhow::Result<pb::Rollout> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let paused = pb::RolloutState::Paused as i32;
    let mut last = client.rollout(id).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = client.rollout(id).await?;
        if (last.state, now.state) == (paused, paused) && last.succeeded == now.succeeded {
            return Ok(now);
        }
        ensure!(Instant::now() < deadline, "not paused after 60 s: {now:?}");
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_replica_loses_its_tenants_to_the_other() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let setup = Setup::new().await?;
    let mut a = setup.replica("replica-a").await?;
    let b = setup.replica("replica-b").await?;
    let (mut on_a, mut on_b) = (a.client().await?, b.client().await?);
    let id = start_detached(&mut on_a).await?;
    wait_for(&mut on_b, &id, 60).await?;
    a.signal("KILL")?;
    a.child.wait().await?;
    let killed = Instant::now();
    let left = TENANTS as u32 - on_b.rollout(&id).await?.succeeded;

    let seen = tokio::time::timeout(Duration::from_secs(120), watch_to_the_end(&mut on_b, &id))
        .await
        .context("the surviving replica did not finish the rollout")??;
    let took = killed.elapsed();
    let finished = seen.finished().context("no RolloutFinished")?.clone();
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32
            && finished.succeeded == TENANTS as u32,
        "{finished:?}"
    );
    // The lease, then B alone on what was left (4 at a time, about 60 ms each), with room
    // for a loaded CI machine.
    let bound =
        LEASE + Duration::from_millis(u64::from(left) * 60 / 4) * 3 + Duration::from_secs(10);
    ensure!(
        took < bound,
        "finished {took:?} after the kill ({left} tenants left; bound {bound:?})"
    );
    let by = setup.every_tenant_done_once().await?;
    eprintln!("killed with {left} tenants left; finished {took:?} later; migrated by {by:?}");
    ensure!(
        by.get("replica-a").copied().unwrap_or(0) > 0
            && by.get("replica-b").copied().unwrap_or(0) > 0,
        "{by:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_cancelled_on_one_replica_stops_on_both() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let setup = Setup::new().await?;
    let a = setup.replica("replica-a").await?;
    let b = setup.replica("replica-b").await?;
    let (mut on_a, mut on_b) = (a.client().await?, b.client().await?);
    let id = start_detached(&mut on_a).await?;
    wait_for(&mut on_a, &id, 20).await?;
    on_b.control(&id, Control::Cancel).await?;
    let seen = tokio::time::timeout(Duration::from_secs(60), watch_to_the_end(&mut on_a, &id))
        .await
        .context("the cancelled rollout did not end")??;
    let finished = seen.finished().context("no RolloutFinished")?.clone();
    ensure!(
        finished.state == pb::RolloutState::Cancelled as i32
            && finished.succeeded + finished.skipped + finished.failed == TENANTS as u32
            && finished.skipped > 0,
        "{finished:?}"
    );
    let ends = seen
        .events
        .iter()
        .filter(|e| matches!(e.kind, Some(pb::rollout_event::Kind::RolloutFinished(_))))
        .count();
    ensure!(ends == 1, "{ends} RolloutFinished events");
    // Each tenant either finished every migration or none was left half-done.
    for i in 0..TENANTS {
        let history = setup.fleet.history(i).await.unwrap_or_default();
        ensure!(
            history.iter().all(|(_, s, _)| s == "applied"),
            "tenant {i}: {history:?}"
        );
    }
    Ok(())
}
