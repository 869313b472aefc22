//! The fault suite (issue 12): a fault is injected with a real mechanism (signals to real
//! `avocetd` processes, `pg_terminate_backend`, MariaDB's `KILL`, a refused port, a listener
//! that never answers, a lock held by a foreign session, a client that goes away), then
//! every tenant is checked with [`invariants::check`]: history agrees with the schema, no
//! migration ran twice, no lock or `running` record left, no session left once the daemon
//! stopped; where a rollout is read back from the control store, [`invariants::agrees`]
//! checks that it agrees with the tenants. A retry or `Resume` (after the documented repair
//! where one is needed) finishes the job. Each scenario prints a `faults:` line with its
//! figures; docs/reliability.md lists them.

mod clients;
mod processes;
mod replicas;
mod tenants;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use avocet_client::{Client, Control, RolloutRecord};
use avocet_tests::{ConfigFile, FLEET, Fleet, MigrationCopy, TestDaemon, invariants, pb};

const AVOCETD: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// The failure of tenant `id` in `run`: its error code and message, or `None` if it succeeded.
fn failure(run: &RolloutRecord, id: &str) -> anyhow::Result<Option<(String, String)>> {
    let t = run
        .tenants()
        .find(|t| t.tenant == id)
        .with_context(|| format!("no TenantFinished for {id}"))?;
    Ok(t.error
        .as_ref()
        .filter(|e| !e.code.is_empty())
        .map(|e| (e.code.clone(), e.message.clone())))
}

/// Every tenant of `run` but `except` succeeded.
fn others_succeeded(run: &RolloutRecord, fleet: &Fleet, except: &str) -> anyhow::Result<()> {
    for id in fleet.ids().iter().filter(|id| *id != except) {
        ensure!(failure(run, id)?.is_none(), "{id}: {:?}", failure(run, id)?);
    }
    Ok(())
}

fn report(scenario: &str, checked: invariants::Checked, faults: usize) {
    println!(
        "faults: {scenario}: {} tenants checked, {} migrations checked, {faults} fault(s) \
         injected, 0 lost",
        checked.tenants, checked.migrations
    );
}

/// The end of a scenario: an apply of every tenant succeeds, the daemon stops, and every
/// tenant passes the invariants with `migrations` applied migrations in all; prints the
/// scenario's figures.
async fn retry_stop_and_check(
    daemon: TestDaemon,
    fleet: &Fleet,
    migrations: usize,
    scenario: &str,
    faults: usize,
) -> anyhow::Result<()> {
    let retry = daemon.apply_all().await?;
    ensure!(
        retry.finished().context("finished")?.failed == 0,
        "{retry:?}"
    );
    daemon.stop().await?;
    let checked = invariants::check(fleet, true).await?;
    ensure!(checked.migrations == migrations, "{checked:?}");
    report(scenario, checked, faults);
    Ok(())
}

/// Every event of rollout `id` from the first, checked with [`gap_free`].
async fn events_whole(client: &mut Client, id: &str) -> anyhow::Result<RolloutRecord> {
    let all = RolloutRecord::collect(client.watch(id, 0).await?).await?;
    gap_free(&all)?;
    Ok(all)
}

/// `run`'s events are numbered 1..n without a gap or a repeat, and a tenant that finished
/// more than once was stopped by a shutdown every time but the last (code `cancelled`:
/// "stopped before version v (the rollout is stopping)"), then resumed. Returns how many
/// tenants finished more than once.
fn gap_free(run: &RolloutRecord) -> anyhow::Result<usize> {
    let seqs: Vec<u64> = run.events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    ensure!(seqs == expected, "event numbers {seqs:?}");
    let mut last = std::collections::BTreeMap::new();
    let mut again = 0;
    for t in run.tenants() {
        if let Some(before) = last.insert(t.tenant.clone(), t) {
            let stopped = before.error.as_ref().is_some_and(|e| {
                e.code == "cancelled" && e.message.contains("the rollout is stopping")
            });
            ensure!(
                stopped,
                "{} finished twice: {before:?}, then {t:?}",
                t.tenant
            );
            again += 1;
        }
    }
    Ok(again)
}

/// Resumes the `interrupted` rollout `id` and follows it to its end; checks that it
/// succeeded.
async fn resume_to_the_end(client: &mut Client, id: &str) -> anyhow::Result<()> {
    let got = client.rollout(id).await?;
    ensure!(got.state == pb::RolloutState::Interrupted as i32, "{got:?}");
    client.control(id, Control::Resume).await?;
    let rest = RolloutRecord::collect(client.watch(id, got.last_seq).await?).await?;
    let finished = rest
        .finished()
        .context("the resumed rollout did not finish")?;
    ensure!(
        finished.state == pb::RolloutState::Succeeded as i32,
        "{finished:?}"
    );
    Ok(())
}

/// The end of a real-process scenario: rollout `id`'s whole event log is gap-free with
/// `stopped` tenants stopped by a shutdown and resumed (see [`gap_free`]) and agrees with
/// the tenants, the daemon stops on SIGTERM, and every tenant passes the invariants with
/// `migrations` applied migrations in all; prints the figures.
async fn whole_stop_and_check(
    mut daemon: avocet_tests::Daemon,
    fleet: &Fleet,
    (id, stopped): (&str, usize),
    migrations: usize,
    scenario: &str,
    faults: usize,
) -> anyhow::Result<()> {
    let mut client = daemon.client().await?;
    let all = RolloutRecord::collect(client.watch(id, 0).await?).await?;
    let again = gap_free(&all)?;
    ensure!(
        again == stopped,
        "{again} tenants finished twice, {stopped} expected"
    );
    invariants::agrees(fleet, &all).await?;
    drop(client);
    daemon.signal("TERM")?;
    daemon.child.wait().await?;
    let checked = settled(fleet, true).await?;
    ensure!(checked.migrations == migrations, "{checked:?}");
    report(scenario, checked, faults);
    Ok(())
}

/// A fleet of tenants with their `effects` table, the counted set of 3 migrations (`slow`
/// as [`invariants::counted_set`] says), and a directory for configuration files and stores.
async fn counted(
    fleet: Fleet,
    slow: Option<f64>,
) -> anyhow::Result<(Fleet, MigrationCopy, tempfile::TempDir)> {
    invariants::prepare(&fleet).await?;
    let set = invariants::counted_set(fleet.dialect, 3, slow)?;
    Ok((fleet, set, tempfile::tempdir()?))
}

/// A real daemon's configuration file, on a port of its own.
struct Real {
    config: std::path::PathBuf,
    port: u16,
}

impl Real {
    /// Writes `file` into `dir` for `fleet` and `set`, with a free port.
    fn new(
        dir: &tempfile::TempDir,
        fleet: &Fleet,
        set: &MigrationCopy,
        file: ConfigFile<'_>,
    ) -> anyhow::Result<Self> {
        let port = avocet_tests::free_port()?;
        let config = ConfigFile { port, ..file }.write(dir.path(), fleet, set.path())?;
        Ok(Self { config, port })
    }

    /// Starts `avocetd` on this file (again, after a kill).
    async fn start(&self) -> anyhow::Result<avocet_tests::Daemon> {
        avocet_tests::Daemon::start(AVOCETD, &self.config, self.port).await
    }
}

/// Polls the invariants for up to 10 s after a process died: the server notices its
/// closed sockets (and frees their locks) a moment later.
async fn settled(fleet: &Fleet, stopped: bool) -> anyhow::Result<invariants::Checked> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match invariants::check(fleet, stopped).await {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The documented repair (README: a `running` or `failed` record "blocks its tenant until
/// someone checks the schema and resolves it" with `repair --mark applied` or
/// `--mark rolled-back`), for the counted sets: every such record's migration is looked at
/// in the schema; one whose table and effect row are both there is marked applied, anything
/// else is undone (its table dropped, its effect row deleted) and marked rolled back.
/// Returns how many records were resolved.
async fn repair_unfinished(client: &mut Client, fleet: &Fleet) -> anyhow::Result<usize> {
    let mut resolved = 0;
    for i in 0..fleet.tenants.len() {
        let history = match fleet.history(i).await {
            Ok(history) => history,
            // Never started: no history table.
            Err(e) if e.to_string().contains("avocet_migrations") => Vec::new(),
            Err(e) => return Err(e),
        };
        for (v, status, _) in history {
            if status != "running" && status != "failed" {
                continue;
            }
            let table = fleet
                .objects(i, "BASE TABLE")
                .await?
                .contains(&format!("t{v}"));
            let effect = invariants::effects(fleet, i).await?.contains(&v);
            let action = if table && effect {
                pb::RepairAction::MarkApplied
            } else {
                fleet
                    .exec(
                        i,
                        &format!(
                            "DROP TABLE IF EXISTS t{v}; DELETE FROM effects WHERE version = {v}"
                        ),
                    )
                    .await?;
                pb::RepairAction::MarkRolledBack
            };
            client
                .repair(pb::RepairRequest {
                    fleet: FLEET.into(),
                    tenant: fleet.tenants[i].id.clone(),
                    version: Some(pb::Version::number(v)),
                    action: action as i32,
                    ..Default::default()
                })
                .await?;
            resolved += 1;
        }
    }
    Ok(resolved)
}
