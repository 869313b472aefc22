//! apply, tls and grouped: every tool migrates a fresh PostgreSQL fleet of N databases with
//! the same set at parallelism P, with server statistics around the run.

use std::{path::Path, time::Instant};

use crate::{
    ctx::Ctx,
    fleets::PgFleet,
    results::{Case, Sample},
    sets::MigrationSet,
    stats::{self, PgCounters, Sampler},
    tools::{
        self, Tool,
        avocet::{self, Daemon, FleetSpec},
        child::{self, TimedOut},
        pool,
    },
};

/// One apply-like case.
pub(crate) struct ApplyCase<'a> {
    /// `apply`, `tls` or `grouped`.
    pub(crate) scenario: &'static str,
    /// The set.
    pub(crate) set: &'a MigrationSet,
    /// Tenants.
    pub(crate) n: usize,
    /// Parallelism.
    pub(crate) p: usize,
    /// `sslmode=require` on every DSN.
    pub(crate) tls: bool,
    /// One transaction per tenant (floor `psql -1`, avocet `--transaction tenant`).
    pub(crate) grouped: bool,
}

/// What a tool run gave, before the statistics.
#[derive(Default)]
struct Run {
    wall_ms: Option<f64>,
    error: Option<String>,
    timed_out: Option<TimedOut>,
    daemon: Option<avocet::DaemonFigures>,
    client_cpu_ms: Option<f64>,
}

/// `avocet apply --fleet bench --output json --concurrency P`, then `extra` and the
/// command line's `--apply-arg`s.
pub(crate) fn avocet_apply_args(ctx: &Ctx, p: usize, extra: Vec<String>) -> Vec<String> {
    let mut args: Vec<String> = [
        "apply",
        "--fleet",
        "bench",
        "--output",
        "json",
        "--concurrency",
    ]
    .map(String::from)
    .to_vec();
    args.push(p.to_string());
    args.extend(extra);
    args.extend(ctx.apply_args.iter().cloned());
    args
}

impl ApplyCase<'_> {
    fn case(&self) -> Case {
        Case {
            dialect: "postgres".into(),
            set: self.set.name.clone(),
            n: self.n,
            p: self.p,
            op: String::new(),
            set_bytes: self.set.bytes(),
            migrations: self.set.migrations.len(),
        }
    }

    /// Extra `avocet apply` arguments of the scenario.
    fn avocet_args(&self) -> Vec<String> {
        if self.grouped {
            vec!["--transaction".into(), "tenant".into()]
        } else {
            Vec::new()
        }
    }
}

/// Runs every repetition of a case with every tool, the order alternating.
pub(crate) async fn run_case(ctx: &Ctx, c: &ApplyCase<'_>) -> anyhow::Result<()> {
    let script = ctx.write_file(
        &format!(
            "floor/{}-{}.sql",
            c.set.name,
            if c.grouped { "grouped" } else { "each" }
        ),
        &c.set.floor_script(c.grouped),
    )?;
    let case = c.case();
    for rep in 0..ctx.plan.reps {
        for (position, tool) in ctx.tools_for_rep(true, rep).into_iter().enumerate() {
            let mut s = Sample::new(c.scenario, &case, &tool, rep, position);
            measure(ctx, c, &tool, &script, &mut s).await;
            s.tolerated = !s.ok && tolerated(c, &tool, s.error.as_deref().unwrap_or(""));
            ctx.record(s);
        }
    }
    Ok(())
}

/// A failure that does not fail smoke: anything over TLS, or the grouped flag not existing.
fn tolerated(c: &ApplyCase<'_>, tool: &Tool, error: &str) -> bool {
    tool.is_avocet()
        && (c.tls
            || (c.grouped
                && error.contains("--transaction")
                && (error.contains("unexpected argument") || error.contains("unrecognized"))))
}

async fn measure(ctx: &Ctx, c: &ApplyCase<'_>, tool: &Tool, script: &Path, s: &mut Sample) {
    let fleet = match ctx.admin.create_pg_fleet(c.n, None).await {
        Ok(f) => f,
        Err(e) => return s.fail(format!("creating the fleet: {e:#}")),
    };
    let r = measure_on(ctx, c, tool, script, &fleet, s).await;
    ctx.admin.drop_pg(&fleet.names).await;
    if let Err(e) = r {
        s.fail(format!("{e:#}"));
    }
}

async fn measure_on(
    ctx: &Ctx,
    c: &ApplyCase<'_>,
    tool: &Tool,
    script: &Path,
    fleet: &PgFleet,
    s: &mut Sample,
) -> anyhow::Result<()> {
    let dsns: Vec<String> = fleet
        .names
        .iter()
        .map(|db| ctx.admin.pg_dsn(db, c.tls))
        .collect();
    let like = ctx.admin.like_pattern();
    let daemon = match tool {
        Tool::Avocet(build) => {
            let spec = FleetSpec {
                dialect: "postgres",
                migrations: &c.set.dir,
                concurrency: c.p,
                dsns: &dsns,
                schemas: None,
                backup: None,
                census_on_apply: None,
            };
            let tag = format!("{}-{}-{}", c.scenario, build.label, s.rep);
            Some(Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await?)
        }
        _ => None,
    };
    let before = stats::pg_counters(&ctx.admin.pg, &fleet.names).await?;
    let sampler = Sampler::start(ctx.admin.pg.clone(), like.clone());
    let mut run = run_tool(ctx, c, tool, script, &dsns, daemon.as_ref()).await;
    s.peak_connections = sampler.stop().await;
    if let Some(d) = daemon {
        if let (Some(e), None) = (&mut run.error, run.timed_out) {
            e.push_str(&format!(
                " | avocetd log: {}",
                pool::tail(&d.log_tail(), 400)
            ));
        }
        d.end(run.timed_out.is_some()).await;
    }
    if let Some(t) = run.timed_out {
        // The server may still be running the killed tool's statement: no statistics; the
        // fleet is dropped (forcing its sessions out) by the caller.
        s.time_out(t);
        return Ok(());
    }
    let after = stats::settled_counters(&ctx.admin.pg, &fleet.names, &like, ctx.settle()).await?;
    fill(s, c, run, after.since(before));
    Ok(())
}

fn fill(s: &mut Sample, c: &ApplyCase<'_>, run: Run, delta: PgCounters) {
    s.ok = run.error.is_none();
    s.error = run.error;
    s.wall_ms = run.wall_ms;
    s.per_tenant_ms = run.wall_ms.map(|w| w * c.p as f64 / c.n as f64);
    s.pg = Some(delta);
    s.sessions_per_tenant = Some(delta.sessions as f64 / c.n as f64);
    let migrations = (c.n * c.set.migrations.len()).max(1) as f64;
    s.commits_per_migration = Some(delta.xact_commit as f64 / migrations);
    s.daemon = run.daemon;
    s.client_cpu_ms = run.client_cpu_ms;
}

async fn run_tool(
    ctx: &Ctx,
    c: &ApplyCase<'_>,
    tool: &Tool,
    script: &Path,
    dsns: &[String],
    daemon: Option<&Daemon>,
) -> Run {
    let jobs = match tool {
        Tool::Floor => dsns
            .iter()
            .map(|d| tools::psql_job(script, d, c.grouped))
            .collect(),
        Tool::Sqlx(sqlx) => dsns
            .iter()
            .map(|d| tools::sqlx_job(sqlx, "run", &c.set.dir, d))
            .collect(),
        Tool::Avocet(build) => {
            let Some(daemon) = daemon else {
                return Run {
                    error: Some("no daemon".into()),
                    ..Run::default()
                };
            };
            let args = avocet_apply_args(ctx, c.p, c.avocet_args());
            let cpu_before = ctx.cpu.process_ms(daemon.pid()).ok();
            let started = Instant::now();
            return match daemon
                .cli(build, &args, &ctx.cpu, ctx.plan.tool_timeout())
                .await
            {
                Ok(cli) => {
                    let mut figures = daemon.figures(&ctx.cpu);
                    if let (Some(f), Some(b)) = (figures.as_mut(), cpu_before) {
                        f.cpu_ms -= b;
                    }
                    let error = avocet::check_apply(&cli, dsns.len()).err();
                    Run {
                        wall_ms: Some(cli.wall.as_secs_f64() * 1000.0),
                        error,
                        daemon: figures,
                        client_cpu_ms: Some(cli.cpu_ms),
                        ..Run::default()
                    }
                }
                Err(e) => Run {
                    wall_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
                    timed_out: child::timed_out(&e),
                    error: Some(format!("{e:#}")),
                    ..Run::default()
                },
            };
        }
    };
    let r = pool::run(jobs, c.p, &ctx.cpu, ctx.plan.tool_timeout()).await;
    Run {
        wall_ms: Some(r.wall.as_secs_f64() * 1000.0),
        error: r.error(dsns.len()),
        timed_out: r.timed_out,
        daemon: None,
        client_cpu_ms: Some(r.cpu_ms),
    }
}
