//! publish: a migration set published through the API and the first plan of it (issue
//! 30). A generated set of PostgreSQL DDL (285 migrations, about 1 MB; smoke 20) is
//! published with `avocet sets publish DIR`, published again (stored already: nothing
//! written), then planned with `avocet plan --set DIGEST` on a fleet of one empty
//! PostgreSQL database (every migration pending) twice: the first plan reads the set from
//! the control store, checks every file's SHA-256 and parses it; the second finds it
//! parsed. Each on a fresh daemon with a fresh control store, SQLite and then PostgreSQL.
//!
//! Only avocet builds with `avocet sets` run it: no other tool publishes a set.

use std::path::Path;

use serde_json::Value;

use crate::{
    ctx::{Ctx, remove_dir},
    results::{Case, Sample},
    sets::{self, Flavour, MigrationSet},
    tools::{
        Build, Tool,
        avocet::{CliRun, Daemon, FleetSpec},
        child,
        pool::tail,
    },
};

/// The control stores measured, in order.
const STORES: [&str; 2] = ["sqlite", "postgres"];

/// Runs every store for each build with `avocet sets`.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let count = ctx.plan.publish_migrations;
    let set = ctx.write_set(&format!("published-{count}"), || sets::published(count))?;
    println!(
        "   set: {} migrations, {} bytes",
        set.migrations.len(),
        set.bytes()
    );
    let builds: Vec<&Build> = ctx.builds.iter().filter(|b| b.sets).collect();
    if builds.is_empty() {
        println!("   (no avocet build publishes sets: nothing to run)");
        return Ok(());
    }
    // The fleet's own directory: the light set, never planned here.
    let own = ctx.light(Flavour::Postgres)?;
    let tenant = ctx.admin.db_name("publish_tenant");
    ctx.admin.create_pg_db(&tenant).await?;
    let dsns = [ctx.admin.pg_dsn(&tenant, false)];
    let r = async {
        for rep in 0..ctx.plan.reps {
            for (position, build) in builds.iter().enumerate() {
                for store in STORES {
                    let target = Target {
                        set: &set,
                        own: &own.dir,
                        dsns: &dsns,
                        store,
                    };
                    measure(ctx, &target, build, rep, position).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    ctx.admin.drop_pg(&[tenant]).await;
    r
}

/// What one measurement publishes and plans, and where.
struct Target<'a> {
    set: &'a MigrationSet,
    own: &'a Path,
    dsns: &'a [String],
    /// `sqlite` or `postgres`: the control store.
    store: &'a str,
}

fn case(t: &Target<'_>, op: &str) -> Case {
    Case {
        dialect: t.store.into(),
        set: t.set.name.clone(),
        n: t.dsns.len(),
        p: 1,
        op: op.into(),
        set_bytes: t.set.bytes(),
        migrations: t.set.migrations.len(),
    }
}

/// A fresh control store and daemon; publish, publish again, plan, plan again.
async fn measure(
    ctx: &Ctx,
    t: &Target<'_>,
    build: &Build,
    rep: u32,
    position: usize,
) -> anyhow::Result<()> {
    let work = ctx.dir(&format!("publish-{}-{}-{rep}", t.store, build.label))?;
    let store_db = ctx
        .admin
        .db_name(&format!("publish_store_{rep}_{position}"));
    let url = match t.store {
        "postgres" => {
            ctx.admin.create_pg_db(&store_db).await?;
            ctx.admin.pg_dsn(&store_db, false)
        }
        _ => format!("sqlite://{}?mode=rwc", work.join("control.db").display()),
    };
    let spec = FleetSpec {
        dialect: "postgres",
        migrations: t.own,
        concurrency: 1,
        dsns: t.dsns,
        schemas: None,
        backup: None,
        census_on_apply: None,
    };
    let dir = t.set.dir.display().to_string();
    let publish = [
        "sets",
        "publish",
        &dir,
        "--dialect",
        "postgres",
        "--output",
        "json",
    ]
    .map(String::from)
    .to_vec();
    let daemon = Daemon::start_on(build, &spec, &work, "publish", Some(&url)).await;
    let mut digest = None;
    let mut stopped = false;
    for (op, first) in [("publish", true), ("publish again", false)] {
        let c = case(t, op);
        let (s, got) = call(
            ctx,
            build,
            daemon.as_ref(),
            &c,
            &publish,
            rep,
            position,
            stopped,
            |run| check_publish(run, c.migrations, first),
        )
        .await;
        stopped |= !s.ok;
        digest = digest.or(got);
        ctx.record(s);
    }
    let digest = digest.unwrap_or_default();
    let plan = [
        "plan", "--fleet", "bench", "--set", &digest, "--output", "json",
    ]
    .map(String::from)
    .to_vec();
    for op in ["plan (first)", "plan again"] {
        let c = case(t, op);
        let (s, _) = call(
            ctx,
            build,
            daemon.as_ref(),
            &c,
            &plan,
            rep,
            position,
            stopped,
            |run| check_plan(run, &digest, c.n, c.migrations).map(|()| digest.clone()),
        )
        .await;
        stopped |= !s.ok;
        ctx.record(s);
    }
    if let Ok(d) = daemon {
        d.end(stopped).await;
    }
    remove_dir(&work);
    if t.store == "postgres" {
        ctx.admin.drop_pg(&[store_db]).await;
    }
    Ok(())
}

/// One CLI call as a sample, its output checked by `check` (which answers the digest).
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
    check: impl Fn(&CliRun) -> Result<String, String>,
) -> (Sample, Option<String>) {
    let tool = Tool::Avocet(build.clone());
    let mut s = Sample::new("publish", c, &tool, rep, position);
    let d = match daemon {
        Err(e) => {
            s.fail(format!("{e:#}"));
            return (s, None);
        }
        Ok(_) if skip => {
            s.fail("not run: an earlier call of this repetition failed");
            return (s, None);
        }
        Ok(d) => d,
    };
    let cpu_before = ctx.cpu.process_ms(d.pid()).ok();
    let mut digest = None;
    match d.cli(build, args, &ctx.cpu, ctx.plan.tool_timeout()).await {
        Err(e) => match child::timed_out(&e) {
            Some(t) => s.time_out(t),
            None => s.fail(format!("{e:#}")),
        },
        Ok(run) => {
            match check(&run) {
                Ok(d) => {
                    s.ok = true;
                    digest = Some(d);
                }
                Err(e) => s.error = Some(format!("{e} | avocetd log: {}", d.log_tail())),
            }
            s.wall_ms = Some(run.wall.as_secs_f64() * 1000.0);
            s.client_cpu_ms = Some(run.cpu_ms);
            s.daemon = d.figures(&ctx.cpu).map(|mut f| {
                f.cpu_ms -= cpu_before.unwrap_or(0.0);
                f
            });
        }
    }
    (s, digest)
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

/// `sets publish`: a digest, every migration, stored the first time only; the digest.
fn check_publish(run: &CliRun, migrations: usize, first: bool) -> Result<String, String> {
    let v = doc(run)?;
    let digest = v["digest"].as_str().unwrap_or_default().to_owned();
    if digest.len() != 64 || v["migrations"] != migrations || v["created"] != first {
        return Err(format!(
            "publish: {v} (expected a digest, {migrations} migrations, created {first})"
        ));
    }
    Ok(digest)
}

/// `plan --set`: the published digest, every migration pending on each of the `n` tenants.
fn check_plan(run: &CliRun, digest: &str, n: usize, migrations: usize) -> Result<(), String> {
    let v = doc(run)?;
    let tenants = v["tenants"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pending = tenants
        .iter()
        .filter(|t| t["steps"].as_array().is_some_and(|s| s.len() == migrations))
        .count();
    if v["set_digest"] != digest || tenants.len() != n || pending != n {
        return Err(format!(
            "plan: set {}, {pending} of {} tenants with {migrations} steps (expected {digest}, {n})",
            v["set_digest"],
            tenants.len()
        ));
    }
    Ok(())
}
