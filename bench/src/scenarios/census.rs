//! census: `avocet census` over N SQLite tenants migrated with the light set (default
//! 10,000), and what `census_on_apply` costs the light-set apply: one apply with it on (the
//! default), then the census, then an apply of fresh tenants with it off, each on a fresh
//! daemon. Daemon CPU and peak RSS are recorded with each figure.
//!
//! Only avocet builds whose CLI has `census` run it. The PostgreSQL cases the issue asks
//! for (1,000 databases, 2,000 schemas of one database) are not written yet.

use std::path::Path;

use serde_json::Value;

use crate::{
    ctx::{Ctx, remove_dir},
    fleets,
    results::{Case, Sample},
    sets::{Flavour, MigrationSet},
    tools::{
        Build, Tool,
        avocet::{CliRun, Daemon, FleetSpec, check_apply},
        child,
        pool::tail,
    },
};

/// Tenants at once, for the apply and the census alike.
const CONCURRENCY: usize = 8;

/// Runs the case for each build that has `census`.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let set = ctx.light(Flavour::Sqlite)?;
    let n = ctx.plan.census_sqlite_n;
    let builds: Vec<&Build> = ctx.builds.iter().filter(|b| b.census).collect();
    if builds.is_empty() {
        println!("   (no avocet build has census: nothing to run)");
        return Ok(());
    }
    for rep in 0..ctx.plan.reps {
        for (position, build) in builds.iter().enumerate() {
            let work = ctx.dir(&format!("census-{n}-{}-{rep}", build.label))?;
            let r = measure(ctx, &set, n, build, &work, rep, position).await;
            remove_dir(&work);
            r?;
        }
    }
    Ok(())
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

/// Apply with `census_on_apply` on and the census on one fleet, then apply with it off on
/// another.
async fn measure(
    ctx: &Ctx,
    set: &MigrationSet,
    n: usize,
    build: &Build,
    work: &Path,
    rep: u32,
    position: usize,
) -> anyhow::Result<()> {
    for (on, tag) in [(true, "on"), (false, "off")] {
        let dir = work.join(format!("tenants-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let dsns: Vec<String> = fleets::sqlite_paths(&dir, n)
            .iter()
            .map(|p| fleets::sqlite_dsn(p))
            .collect();
        let spec = FleetSpec {
            dialect: "sqlite",
            migrations: &set.dir,
            concurrency: CONCURRENCY,
            dsns: &dsns,
            schemas: None,
            census_on_apply: Some(on),
        };
        let daemon = Daemon::start(build, &spec, work, tag).await;
        let apply = ["apply", "--fleet", "bench", "-y", "--output", "json"].map(String::from);
        let c = case(set, n, &format!("apply, census_on_apply {tag}"));
        let s = call(ctx, build, daemon.as_ref(), &c, &apply, rep, position).await;
        let mut failed = !s.ok;
        ctx.record(s);
        if on && !failed {
            let census = ["census", "--fleet", "bench", "--output", "json"].map(String::from);
            let c = case(set, n, "census");
            let s = call(ctx, build, daemon.as_ref(), &c, &census, rep, position).await;
            failed |= !s.ok;
            ctx.record(s);
        }
        if let Ok(d) = daemon {
            d.end(failed).await;
        }
    }
    Ok(())
}

/// One CLI call as a sample, checked as an apply or as a census of `c.n` tenants in one
/// expected class.
async fn call(
    ctx: &Ctx,
    build: &Build,
    daemon: Result<&Daemon, &anyhow::Error>,
    c: &Case,
    args: &[String],
    rep: u32,
    position: usize,
) -> Sample {
    let tool = Tool::Avocet(build.clone());
    let mut s = Sample::new("census", c, &tool, rep, position);
    let d = match daemon {
        Err(e) => {
            s.fail(format!("{e:#}"));
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
            let check = match args[0].as_str() {
                "apply" => check_apply(&run, c.n),
                _ => check_census(&run, c.n),
            };
            s.ok = check.is_ok();
            s.error = check
                .err()
                .map(|e| format!("{e} | avocetd log: {}", d.log_tail()));
            s.wall_ms = Some(run.wall.as_secs_f64() * 1000.0);
            s.per_tenant_ms = Some(run.wall.as_secs_f64() * 1000.0 / c.n.max(1) as f64);
            s.client_cpu_ms = Some(run.cpu_ms);
            s.daemon = d.figures(&ctx.cpu).map(|mut f| {
                f.cpu_ms -= cpu_before.unwrap_or(0.0);
                f
            });
        }
    }
    s
}

/// `census --output json`: every tenant read, all in one expected class.
fn check_census(run: &CliRun, n: usize) -> Result<(), String> {
    if run.code != Some(0) {
        return Err(format!(
            "avocet exited with {:?}: {}",
            run.code,
            tail(&run.stderr, 800)
        ));
    }
    let v: Value = serde_json::from_str(run.stdout.trim())
        .map_err(|e| format!("not a JSON document ({e}): {}", tail(&run.stdout, 200)))?;
    let classes = v["classes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let one = classes.len() == 1
        && classes[0]["expected"] == true
        && classes[0]["tenants"].as_array().map(Vec::len) == Some(n);
    if v["tenants"] != n || !one {
        return Err(format!(
            "census: {} tenants in {} class(es) (expected {n} in one expected class)",
            v["tenants"],
            classes.len()
        ));
    }
    Ok(())
}
