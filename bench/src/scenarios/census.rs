//! census: `avocet census` over fleets migrated with the light set, each figure with the
//! daemon's CPU and peak RSS:
//!
//! - N SQLite tenants (default 10,000): the apply with `census_on_apply` on (the default),
//!   the census, then an apply of fresh tenants with it off: what recording the expected
//!   schema costs the apply;
//! - N PostgreSQL databases (default 1,000): the apply, then the census;
//! - N schemas of one PostgreSQL database (default 2,000): the apply, then the census.
//!
//! Only avocet builds whose CLI has `census` run it.

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

/// Runs the cases for each build that has `census`.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let builds: Vec<&Build> = ctx.builds.iter().filter(|b| b.census).collect();
    if builds.is_empty() {
        println!("   (no avocet build has census: nothing to run)");
        return Ok(());
    }
    let sqlite = ctx.light(Flavour::Sqlite)?;
    let pg = ctx.light(Flavour::Postgres)?;
    let (n, dbs, schemas) = (
        ctx.plan.census_sqlite_n,
        ctx.plan.census_pg_n,
        ctx.plan.census_schemas_n,
    );
    for rep in 0..ctx.plan.reps {
        for (position, build) in builds.iter().enumerate() {
            let at = Where { rep, position };
            let work = ctx.dir(&format!("census-{n}-{}-{rep}", build.label))?;
            let r = sqlite_case(ctx, &sqlite, n, build, &work, at).await;
            remove_dir(&work);
            if let Err(e) = r {
                ctx.scenario_error(&format!("census sqlite N={n}"), &e);
            }
            let work = ctx.dir(&format!("census-pg-{}-{rep}", build.label))?;
            if let Err(e) = pg_databases(ctx, &pg, dbs, build, &work, at).await {
                ctx.scenario_error(&format!("census postgres N={dbs}"), &e);
            }
            if let Err(e) = pg_schemas(ctx, &pg, schemas, build, &work, at).await {
                ctx.scenario_error(&format!("census schemas N={schemas}"), &e);
            }
            remove_dir(&work);
        }
    }
    Ok(())
}

/// Which repetition, and the build's place in it.
#[derive(Clone, Copy)]
struct Where {
    rep: u32,
    position: usize,
}

/// `n` PostgreSQL databases: the apply, then the census.
async fn pg_databases(
    ctx: &Ctx,
    set: &MigrationSet,
    n: usize,
    build: &Build,
    work: &Path,
    at: Where,
) -> anyhow::Result<()> {
    let fleet = ctx.admin.create_pg_fleet(n, None).await?;
    let dsns: Vec<String> = fleet
        .names
        .iter()
        .map(|d| ctx.admin.pg_dsn(d, false))
        .collect();
    let spec = FleetSpec {
        dialect: "postgres",
        migrations: &set.dir,
        concurrency: CONCURRENCY,
        dsns: &dsns,
        schemas: None,
        census_on_apply: Some(true),
        backup: None,
    };
    let r = apply_and_census(ctx, set, "postgres", &spec, build, work, at).await;
    ctx.admin.drop_pg(&fleet.names).await;
    r
}

/// `n` schemas of one PostgreSQL database: the apply, then the census.
async fn pg_schemas(
    ctx: &Ctx,
    set: &MigrationSet,
    n: usize,
    build: &Build,
    work: &Path,
    at: Where,
) -> anyhow::Result<()> {
    let db = ctx
        .admin
        .db_name(&format!("census_schemas_{n}_{}_{}", at.rep, at.position));
    ctx.admin.create_pg_db(&db).await?;
    let dsns = vec![ctx.admin.pg_dsn(&db, false); n];
    let names: Vec<String> = (1..=n).map(|i| format!("tenant_{i:05}")).collect();
    let spec = FleetSpec {
        dialect: "postgres",
        migrations: &set.dir,
        concurrency: CONCURRENCY,
        dsns: &dsns,
        schemas: Some(&names),
        census_on_apply: Some(true),
        backup: None,
    };
    let r = apply_and_census(ctx, set, "postgres schemas", &spec, build, work, at).await;
    ctx.admin.drop_pg(std::slice::from_ref(&db)).await;
    r
}

/// On a fresh daemon for `spec`: the apply, then (when it succeeded) the census.
async fn apply_and_census(
    ctx: &Ctx,
    set: &MigrationSet,
    dialect: &str,
    spec: &FleetSpec<'_>,
    build: &Build,
    work: &Path,
    at: Where,
) -> anyhow::Result<()> {
    let n = spec.dsns.len();
    let tag = format!("{}-{n}", dialect.replace(' ', "-"));
    let daemon = Daemon::start(build, spec, work, &tag).await;
    let apply = ["apply", "--fleet", "bench", "-y", "--output", "json"].map(String::from);
    let c = case(set, dialect, n, "apply, census_on_apply on");
    let s = call(ctx, build, daemon.as_ref(), &c, &apply, at).await;
    let mut failed = !s.ok;
    ctx.record(s);
    if !failed {
        let census = ["census", "--fleet", "bench", "--output", "json"].map(String::from);
        let c = case(set, dialect, n, "census");
        let s = call(ctx, build, daemon.as_ref(), &c, &census, at).await;
        failed |= !s.ok;
        ctx.record(s);
    }
    if let Ok(d) = daemon {
        d.end(failed).await;
    }
    Ok(())
}

fn case(set: &MigrationSet, dialect: &str, n: usize, op: &str) -> Case {
    Case {
        dialect: dialect.into(),
        set: set.name.clone(),
        n,
        p: CONCURRENCY,
        op: op.into(),
        set_bytes: set.bytes(),
        migrations: set.migrations.len(),
    }
}

/// SQLite: apply with `census_on_apply` on and the census on one fleet, then apply with it
/// off on another.
async fn sqlite_case(
    ctx: &Ctx,
    set: &MigrationSet,
    n: usize,
    build: &Build,
    work: &Path,
    at: Where,
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
            backup: None,
        };
        if on {
            apply_and_census(ctx, set, "sqlite", &spec, build, work, at).await?;
            continue;
        }
        let daemon = Daemon::start(build, &spec, work, tag).await;
        let apply = ["apply", "--fleet", "bench", "-y", "--output", "json"].map(String::from);
        let c = case(set, "sqlite", n, "apply, census_on_apply off");
        let s = call(ctx, build, daemon.as_ref(), &c, &apply, at).await;
        let failed = !s.ok;
        ctx.record(s);
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
    at: Where,
) -> Sample {
    let tool = Tool::Avocet(build.clone());
    let mut s = Sample::new("census", c, &tool, at.rep, at.position);
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
