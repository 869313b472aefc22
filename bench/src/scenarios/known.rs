//! known: `avocet status` answered from the control store's last-known state (no tenant is
//! touched) over N registered SQLite tenants (default 100,000). One `avocet verify` first
//! records a reading for every tenant (timed too, as the setup it is); then `status` twice on
//! that daemon, then once on a fresh daemon over the same control store. The tenants are
//! empty files (empty SQLite databases), so every reading says "20 pending".
//!
//! Only avocet builds with last-known state (those whose `status` has `--refresh`) run it:
//! no other tool keeps one, so there is nothing to compare with but the 200 ms target.

use std::path::Path;

use serde_json::Value;

use crate::{
    ctx::{Ctx, remove_dir},
    fleets,
    results::{Case, Sample},
    sets::{Flavour, MigrationSet},
    tools::{
        Build, Tool,
        avocet::{CliRun, Daemon, FleetSpec},
        child,
        pool::tail,
    },
};

/// Tenants read at once by the setup `verify`.
const CONCURRENCY: usize = 8;

/// Runs the case for each build that keeps last-known state.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let set = ctx.light(Flavour::Sqlite)?;
    let n = ctx.plan.known_n;
    let builds: Vec<&Build> = ctx.builds.iter().filter(|b| b.status_refresh).collect();
    if builds.is_empty() {
        println!("   (no avocet build keeps last-known state: nothing to run)");
        return Ok(());
    }
    let dir = ctx.dir(&format!("known-{n}"))?;
    let r = async {
        let paths = fleets::sqlite_paths(&dir, n);
        for p in &paths {
            std::fs::File::create(p)?;
        }
        let dsns: Vec<String> = paths.iter().map(|p| fleets::sqlite_dsn(p)).collect();
        for rep in 0..ctx.plan.reps {
            for (position, build) in builds.iter().enumerate() {
                let work = ctx.dir(&format!("known-{n}-{}-{rep}", build.label))?;
                let r = measure(ctx, &set, &dsns, build, &work, rep, position).await;
                remove_dir(&work);
                r?;
            }
        }
        Ok(())
    }
    .await;
    remove_dir(&dir);
    r
}

fn case(set: &MigrationSet, n: usize, op: &str) -> Case {
    Case {
        dialect: "sqlite".into(),
        set: set.name.clone(),
        n,
        p: CONCURRENCY,
        op: op.into(),
        set_bytes: set.bytes(),
        migrations: set.migrations.len(),
    }
}

/// verify, status, status again; then a fresh daemon on the same control store and status.
/// `work` is the daemons' working directory, so the control store is theirs alone.
async fn measure(
    ctx: &Ctx,
    set: &MigrationSet,
    dsns: &[String],
    build: &Build,
    work: &Path,
    rep: u32,
    position: usize,
) -> anyhow::Result<()> {
    let n = dsns.len();
    let spec = FleetSpec {
        dialect: "sqlite",
        migrations: &set.dir,
        concurrency: CONCURRENCY,
        dsns,
        schemas: None,
        backup: None,
        census_on_apply: None,
    };
    let json = |verb: &str| [verb, "--fleet", "bench", "--output", "json"].map(String::from);
    let ops = [
        ("verify (records last-known)", json("verify")),
        ("status", json("status")),
        ("status, again", json("status")),
    ];
    let daemon = Daemon::start(build, &spec, work, "first").await;
    let mut stopped = false;
    for (op, args) in &ops {
        let c = case(set, n, op);
        let s = call(
            ctx,
            build,
            daemon.as_ref(),
            &c,
            args,
            rep,
            position,
            stopped,
        )
        .await;
        stopped |= !s.ok;
        ctx.record(s);
    }
    if let Ok(d) = daemon {
        d.end(stopped).await;
    }
    let fresh = Daemon::start(build, &spec, work, "fresh").await;
    let c = case(set, n, "status, fresh daemon");
    let s = call(
        ctx,
        build,
        fresh.as_ref(),
        &c,
        &json("status"),
        rep,
        position,
        stopped,
    )
    .await;
    let timed_out = s.timed_out_after_s.is_some();
    ctx.record(s);
    if let Ok(d) = fresh {
        d.end(timed_out).await;
    }
    Ok(())
}

/// One CLI call as a sample, checked as `verify` or `status` output over `c.n` tenants.
#[allow(clippy::too_many_arguments)]
async fn call(
    ctx: &Ctx,
    build: &Build,
    daemon: Result<&Daemon, &anyhow::Error>,
    c: &Case,
    args: &[String],
    rep: u32,
    position: usize,
    skip: bool,
) -> Sample {
    let tool = Tool::Avocet(build.clone());
    let mut s = Sample::new("known", c, &tool, rep, position);
    let d = match daemon {
        Err(e) => {
            s.fail(format!("{e:#}"));
            return s;
        }
        Ok(_) if skip => {
            s.fail("not run: an earlier call of this repetition failed");
            return s;
        }
        Ok(d) => d,
    };
    let cpu_before = ctx.cpu.process_ms(d.pid()).ok();
    match d.cli(build, args, &ctx.cpu, ctx.plan.tool_timeout()).await {
        Err(e) => match child::timed_out(&e) {
            Some(t) => s.time_out(t),
            None => s.fail(format!("{e:#}")),
        },
        Ok(run) => {
            let check = if args[0] == "verify" {
                check_verify(&run, c.n, c.migrations)
            } else {
                check_known(&run, c.n, c.migrations)
            };
            s.ok = check.is_ok();
            s.error = check
                .err()
                .map(|e| format!("{e} | avocetd log: {}", d.log_tail()));
            s.wall_ms = Some(run.wall.as_secs_f64() * 1000.0);
            s.client_cpu_ms = Some(run.cpu_ms);
            s.daemon = d.figures(&ctx.cpu).map(|mut f| {
                f.cpu_ms -= cpu_before.unwrap_or(0.0);
                f
            });
        }
    }
    s
}

fn doc(run: &CliRun) -> Result<Value, String> {
    if run.code != Some(0) {
        return Err(format!(
            "avocet exited with {:?}: {}",
            run.code,
            tail(&run.stderr, 800)
        ));
    }
    serde_json::from_str(run.stdout.trim())
        .map_err(|e| format!("not a JSON document ({e}): {}", tail(&run.stdout, 200)))
}

/// `verify`: one line per tenant, each with every migration pending.
fn check_verify(run: &CliRun, n: usize, migrations: usize) -> Result<(), String> {
    let v = doc(run)?;
    let tenants = v["tenants"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pending = tenants
        .iter()
        .filter(|t| t["pending"] == migrations)
        .count();
    if tenants.len() != n || pending != n {
        return Err(format!(
            "verify: {pending} of {} tenants with {migrations} pending (expected {n})",
            tenants.len()
        ));
    }
    Ok(())
}

/// `status` from last-known state: every tenant has a reading, every one pending.
fn check_known(run: &CliRun, n: usize, migrations: usize) -> Result<(), String> {
    let v = doc(run)?;
    let ok = v["tenant_count"] == n
        && v["unknown"] == 0
        && v["pending"] == n
        && v["oldest_read_at_unix_ms"].is_u64();
    if !ok {
        return Err(format!(
            "status: tenant_count {}, unknown {}, pending {} (expected {n} tenants, each with \
             a reading and {migrations} pending)",
            v["tenant_count"], v["unknown"], v["pending"]
        ));
    }
    Ok(())
}
