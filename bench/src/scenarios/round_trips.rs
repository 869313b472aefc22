//! Round trips per migration: once per run and apply set, every tool applies the set to ONE
//! fresh PostgreSQL tenant (N=1, P=1) while strace counts its writes to the server (psql and
//! sqlx-cli run under strace; avocetd, already started, is attached with `-p` for the apply
//! and detached after it). Each write is one request, and with these protocols one round
//! trip (the client flushes, then waits for the answer). The tenant's `xact_commit` delta
//! gives its commits per migration. Without strace (or ptrace) the tool still runs for the
//! commits, and the round trips are recorded as unavailable with the reason.

use std::path::Path;

use super::apply::avocet_apply_args;
use crate::{
    ctx::Ctx,
    fleets::PgFleet,
    results::RoundTrips,
    sets::MigrationSet,
    stats,
    tools::{
        self, Tool,
        avocet::{self, Daemon, FleetSpec},
        child::{self, TimedOut},
        pool,
    },
};

/// Measures every tool on `set`; a tool's failure is recorded with its figure, not returned.
pub(crate) async fn run(ctx: &Ctx, set: &MigrationSet) -> anyhow::Result<()> {
    let script = ctx.write_file(
        &format!("floor/{}-each.sql", set.name),
        &set.floor_script(false),
    )?;
    for tool in ctx.tools(true) {
        let mut r = RoundTrips::new(&set.name, set.migrations.len(), &tool);
        match ctx.admin.create_pg_fleet(1, None).await {
            Err(e) => r.error = Some(format!("creating the tenant: {e:#}")),
            Ok(fleet) => {
                if let Err(e) = measure(ctx, set, &script, &tool, &fleet, &mut r).await {
                    r.error = Some(format!("{e:#}"));
                }
                ctx.admin.drop_pg(&fleet.names).await;
            }
        }
        ctx.record_round_trips(r);
    }
    Ok(())
}

/// What one traced run gave.
struct Traced {
    /// The tool's failure.
    error: Option<String>,
    /// Set when the tool was killed at the timeout.
    timed_out: Option<TimedOut>,
    /// Whether the trace was taken (else why not).
    traced: Result<(), String>,
}

/// A file name part from a tool label (labels are the user's).
fn file_part(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

async fn measure(
    ctx: &Ctx,
    set: &MigrationSet,
    script: &Path,
    tool: &Tool,
    fleet: &PgFleet,
    r: &mut RoundTrips,
) -> anyhow::Result<()> {
    let trace = ctx
        .dir("strace")?
        .join(format!("{}-{}.trace", set.name, file_part(&tool.label())));
    let before = stats::pg_counters(&ctx.admin.pg, &fleet.names).await?;
    let t = traced_run(ctx, set, script, tool, fleet, &trace).await;
    let t = match t {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&trace);
            return Err(e);
        }
    };
    match t.traced {
        Ok(()) if t.error.is_none() => match ctx.strace.count_file(&trace) {
            Ok(c) => {
                r.writes = Some(c.writes);
                r.connections = Some(c.connections);
            }
            Err(why) => r.unavailable = Some(why),
        },
        Ok(()) => {}
        Err(why) => r.unavailable = Some(why),
    }
    let _ = std::fs::remove_file(&trace);
    if let Some(to) = t.timed_out {
        r.error = Some(to.to_string());
        r.timed_out_after_s = Some(to.after.as_secs());
        return Ok(());
    }
    if let Some(e) = t.error {
        r.error = Some(e);
        return Ok(());
    }
    let like = ctx.admin.like_pattern();
    let after = stats::settled_counters(&ctx.admin.pg, &fleet.names, &like, ctx.settle()).await?;
    let commits = after.since(before).xact_commit;
    let m = set.migrations.len().max(1) as f64;
    r.commits = Some(commits);
    r.commits_per_migration = Some(commits as f64 / m);
    r.round_trips_per_migration = r.writes.map(|w| w as f64 / m);
    Ok(())
}

/// Runs the tool once on the tenant, under strace when it can be used.
async fn traced_run(
    ctx: &Ctx,
    set: &MigrationSet,
    script: &Path,
    tool: &Tool,
    fleet: &PgFleet,
    trace: &Path,
) -> anyhow::Result<Traced> {
    let dsn = ctx.admin.pg_dsn(&fleet.names[0], false);
    let timeout = ctx.plan.tool_timeout();
    let build = match tool {
        Tool::Avocet(b) => b,
        Tool::Floor | Tool::Sqlx(_) => {
            let job = match tool {
                Tool::Sqlx(sqlx) => tools::sqlx_job(sqlx, "run", &set.dir, &dsn),
                _ => tools::psql_job(script, &dsn, false),
            };
            let (job, traced) = match ctx.strace.unavailable() {
                None => (ctx.strace.wrap(&job, trace), Ok(())),
                Some(why) => (job, Err(why.to_string())),
            };
            let res = pool::run(vec![job], 1, &ctx.cpu, timeout).await;
            return Ok(Traced {
                error: res.error(1),
                timed_out: res.timed_out,
                traced,
            });
        }
    };
    let dsns = [dsn];
    let spec = FleetSpec {
        dialect: "postgres",
        migrations: &set.dir,
        concurrency: 1,
        dsns: &dsns,
        schemas: None,
        backup: None,
        census_on_apply: None,
    };
    let tag = format!("round-trips-{}-{}", set.name, build.label);
    let daemon = Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await?;
    let attached = ctx.strace.attach(daemon.pid(), trace).await;
    let args = avocet_apply_args(ctx, 1, Vec::new());
    let run = daemon.cli(build, &args, &ctx.cpu, timeout).await;
    let traced = match attached {
        Ok(a) => a.detach().await,
        Err(e) if ctx.strace.unavailable().is_some() => Err(e),
        Err(e) => Err(format!("cannot attach strace to avocetd: {e}")),
    };
    let timed_out = run.as_ref().err().and_then(child::timed_out);
    let error = match run {
        Ok(cli) => avocet::check_apply(&cli, 1)
            .err()
            .map(|e| format!("{e} | avocetd log: {}", pool::tail(&daemon.log_tail(), 400))),
        Err(e) => Some(format!("{e:#}")),
    };
    daemon.end(timed_out.is_some()).await;
    Ok(Traced {
        error,
        timed_out,
        traced,
    })
}
