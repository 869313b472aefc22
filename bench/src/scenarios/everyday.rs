//! The everyday rollout: every tenant already migrated, one new migration to all of them.
//!
//! - `one-more`: N PostgreSQL databases (copies of one template on the light set) or N SQLite
//!   files, +1 migration (`ADD COLUMN`) at P = 8. The floor: 8 psql sessions, each
//!   `\connect`ing to its share of the databases in turn and running `BEGIN; ALTER …; INSERT`
//!   a history row`; COMMIT`; sqlx-cli: `sqlx migrate run` per database, 8 at once.
//! - `schemas`: N schemas in one PostgreSQL database: the first apply (one `CREATE TABLE`),
//!   then +1 (`ADD COLUMN`), then `status --refresh` (avocet). The floor: 8 psql sessions, per
//!   schema `BEGIN; SET LOCAL search_path …; <the migration>; INSERT` a history row`; COMMIT`.
//!
//! Each tool gets fresh tenants for each repetition, since applying changes them.

use std::{path::Path, time::Instant};

use anyhow::bail;
use sqlx::Connection as _;

use super::reads;
use crate::{
    ctx::Ctx,
    fleets,
    results::{Case, Sample},
    sets::{self, Flavour, MigrationSet},
    tools::{
        self, Tool,
        avocet::{self, Daemon, FleetSpec},
        child,
        pool::{self, Job},
    },
};

/// Parallelism of every tool.
const P: usize = 8;

/// The migration every tenant gets: version 21 of the light set.
const ONE_MORE: &str = "ALTER TABLE accounts ADD COLUMN one_more TEXT;\n";

/// Runs `one-more` for every configured size.
pub(crate) async fn one_more(ctx: &Ctx) -> anyhow::Result<()> {
    for &n in &ctx.plan.one_more_pg_n {
        if let Err(e) = one_more_pg(ctx, n).await {
            ctx.scenario_error(&format!("one-more postgres N={n}"), &e);
        }
    }
    for &n in &ctx.plan.one_more_sqlite_n {
        if let Err(e) = one_more_sqlite(ctx, n).await {
            ctx.scenario_error(&format!("one-more sqlite N={n}"), &e);
        }
    }
    Ok(())
}

/// The light set plus migration 21 (sqlx single files), for `flavour`.
fn plus_one(ctx: &Ctx, flavour: Flavour) -> anyhow::Result<(MigrationSet, MigrationSet)> {
    let base = ctx.light(flavour)?;
    let name = match flavour {
        Flavour::Postgres => "light-pg-plus",
        Flavour::Sqlite => "light-sqlite-plus",
    };
    let plus = ctx.write_set(name, || {
        let mut m = sets::light(flavour);
        m.push(sets::Migration {
            version: m.len() as i64 + 1,
            name: "one_more".into(),
            sql: ONE_MORE.into(),
        });
        m
    })?;
    Ok((base, plus))
}

fn case(dialect: &str, set: &MigrationSet, n: usize, op: &str) -> Case {
    Case {
        dialect: dialect.into(),
        set: set.name.clone(),
        n,
        p: P,
        op: op.into(),
        set_bytes: set.bytes(),
        migrations: 1,
    }
}

async fn one_more_pg(ctx: &Ctx, n: usize) -> anyhow::Result<()> {
    let (base, plus) = plus_one(ctx, Flavour::Postgres)?;
    let tpl = ctx.admin.db_name("onemore_tpl");
    ctx.admin.create_pg_db(&tpl).await?;
    let r = async {
        let dsn = ctx.admin.pg_dsn(&tpl, false);
        reads::prepare_template(ctx, "postgres", &base, &dsn).await?;
        floor_history(&dsn, base.migrations.len()).await?;
        ctx.admin.wait_idle(&tpl).await?;
        let script = ctx.write_file("floor/one-more.sql", &floor_step(None))?;
        for rep in 0..ctx.plan.reps {
            for (position, tool) in ctx.tools_for_rep(true, rep).into_iter().enumerate() {
                let c = case("postgres", &plus, n, "+1");
                let mut s = Sample::new("one-more", &c, &tool, rep, position);
                let fleet = ctx.admin.create_pg_fleet(n, Some(&tpl)).await?;
                let dsns: Vec<String> = fleet
                    .names
                    .iter()
                    .map(|d| ctx.admin.pg_dsn(d, false))
                    .collect();
                let r = measure(ctx, &tool, &plus, "postgres", &dsns, None, &script, &mut s).await;
                ctx.admin.drop_pg(&fleet.names).await;
                if let Err(e) = r {
                    s.fail(format!("{e:#}"));
                }
                ctx.record(s);
            }
        }
        anyhow::Ok(())
    }
    .await;
    ctx.admin.drop_pg(&[tpl]).await;
    r
}

async fn one_more_sqlite(ctx: &Ctx, n: usize) -> anyhow::Result<()> {
    let (base, plus) = plus_one(ctx, Flavour::Sqlite)?;
    let dir = ctx.dir(&format!("one-more-sqlite-{n}"))?;
    let r = async {
        let tpl = dir.join("template.db");
        reads::prepare_template(ctx, "sqlite", &base, &fleets::sqlite_dsn(&tpl)).await?;
        for rep in 0..ctx.plan.reps {
            for (position, tool) in ctx.tools_for_rep(false, rep).into_iter().enumerate() {
                let c = case("sqlite", &plus, n, "+1");
                let mut s = Sample::new("one-more", &c, &tool, rep, position);
                let files = dir.join(format!("{}-{rep}", tool.label()));
                std::fs::create_dir_all(&files)?;
                let paths = fleets::sqlite_paths(&files, n);
                for p in &paths {
                    std::fs::copy(&tpl, p)?;
                }
                let dsns: Vec<String> = paths.iter().map(|p| fleets::sqlite_dsn(p)).collect();
                let none = Path::new("");
                let r = measure(ctx, &tool, &plus, "sqlite", &dsns, None, none, &mut s).await;
                crate::ctx::remove_dir(&files);
                if let Err(e) = r {
                    s.fail(format!("{e:#}"));
                }
                ctx.record(s);
            }
        }
        anyhow::Ok(())
    }
    .await;
    crate::ctx::remove_dir(&dir);
    r
}

/// The floor's history table, with the rows of `migrations` applied ones.
async fn floor_history(dsn: &str, migrations: usize) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(dsn).await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE bench_history (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL \
         DEFAULT now()); INSERT INTO bench_history (version) SELECT generate_series(1, {migrations})"
    ))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// One tenant's step of the floor: the migration and its history row in one transaction,
/// in `schema` when given.
fn floor_step(schema: Option<&str>) -> String {
    let path = schema.map_or_else(String::new, |s| format!("SET LOCAL search_path TO {s};\n"));
    format!("BEGIN;\n{path}{ONE_MORE}INSERT INTO bench_history (version) VALUES (21);\nCOMMIT;\n")
}

/// Measures one tool applying `set` to the tenants `dsns` (and `schemas`, one per tenant, in
/// one database); `script` is the floor's step for one database.
#[allow(clippy::too_many_arguments)]
async fn measure(
    ctx: &Ctx,
    tool: &Tool,
    set: &MigrationSet,
    dialect: &str,
    dsns: &[String],
    schemas: Option<&[String]>,
    script: &Path,
    s: &mut Sample,
) -> anyhow::Result<()> {
    let n = dsns.len();
    match tool {
        Tool::Floor => {
            let jobs = floor_jobs(ctx, dsns, schemas, script)?;
            let r = pool::run(jobs, P, &ctx.cpu, ctx.plan.tool_timeout()).await;
            s.ok = r.failed == 0;
            s.error = r.error(P.min(n));
            s.wall_ms = Some(r.wall.as_secs_f64() * 1000.0);
            s.client_cpu_ms = Some(r.cpu_ms);
        }
        Tool::Sqlx(sqlx) => {
            let jobs = dsns
                .iter()
                .map(|d| tools::sqlx_job(sqlx, "run", &set.dir, d))
                .collect();
            let r = pool::run(jobs, P, &ctx.cpu, ctx.plan.tool_timeout()).await;
            s.ok = r.failed == 0;
            s.error = r.error(n);
            s.wall_ms = Some(r.wall.as_secs_f64() * 1000.0);
            s.client_cpu_ms = Some(r.cpu_ms);
        }
        Tool::Avocet(build) => {
            let spec = FleetSpec {
                dialect,
                migrations: &set.dir,
                concurrency: P,
                dsns,
                schemas,
                backup: None,
                census_on_apply: None,
            };
            let tag = format!("{}-{}-{}-{}", s.scenario, n, build.label, s.rep);
            let daemon = Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await?;
            let args = super::apply::avocet_apply_args(ctx, P, Vec::new());
            let cpu_before = ctx.cpu.process_ms(daemon.pid()).ok();
            let run = daemon
                .cli(build, &args, &ctx.cpu, ctx.plan.tool_timeout())
                .await;
            let timed_out = run.as_ref().err().and_then(child::timed_out);
            match run {
                Ok(cli) => {
                    let check = avocet::check_apply(&cli, n);
                    s.ok = check.is_ok();
                    s.error = check.err();
                    s.wall_ms = Some(cli.wall.as_secs_f64() * 1000.0);
                    s.client_cpu_ms = Some(cli.cpu_ms);
                    s.daemon = daemon.figures(&ctx.cpu).map(|mut f| {
                        f.cpu_ms -= cpu_before.unwrap_or(0.0);
                        f
                    });
                }
                Err(e) => match timed_out {
                    Some(t) => s.time_out(t),
                    None => s.fail(format!("{e:#} | avocetd log: {}", daemon.log_tail())),
                },
            }
            daemon.end(timed_out.is_some()).await;
        }
    }
    s.per_tenant_ms = s.wall_ms.map(|w| w * P as f64 / n as f64);
    Ok(())
}

/// The floor's 8 psql sessions: each `\connect`s to (or sets the schema of) its share of
/// the tenants in turn and runs `script`'s step there.
fn floor_jobs(
    ctx: &Ctx,
    dsns: &[String],
    schemas: Option<&[String]>,
    script: &Path,
) -> anyhow::Result<Vec<Job>> {
    let step = std::fs::read_to_string(script).unwrap_or_default();
    let mut jobs = Vec::with_capacity(P);
    for worker in 0..P.min(dsns.len()) {
        let mut text = String::new();
        for i in (worker..dsns.len()).step_by(P) {
            match schemas {
                Some(schemas) => text += &floor_step(Some(&schemas[i])),
                None => {
                    text += &format!("\\connect {}\n", dsns[i]);
                    text += &step;
                }
            }
        }
        let file = ctx.write_file(&format!("floor/worker-{worker}.sql"), &text)?;
        jobs.push(tools::psql_job(&file, &dsns[worker], false));
    }
    Ok(jobs)
}

/// Runs `schemas` for every configured size.
pub(crate) async fn schemas(ctx: &Ctx) -> anyhow::Result<()> {
    for &n in &ctx.plan.schemas_n {
        if let Err(e) = schemas_case(ctx, n).await {
            ctx.scenario_error(&format!("schemas N={n}"), &e);
        }
    }
    Ok(())
}

async fn schemas_case(ctx: &Ctx, n: usize) -> anyhow::Result<()> {
    let first = ctx.write_set("schemas-first", || {
        vec![sets::Migration {
            version: 1,
            name: "accounts".into(),
            sql: "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL DEFAULT 0);\n"
                .into(),
        }]
    })?;
    let plus = ctx.write_set("schemas-plus", || {
        let mut m = vec![sets::Migration {
            version: 1,
            name: "accounts".into(),
            sql: "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL DEFAULT 0);\n"
                .into(),
        }];
        m.push(sets::Migration {
            version: 2,
            name: "one_more".into(),
            sql: ONE_MORE.into(),
        });
        m
    })?;
    let names: Vec<String> = (1..=n).map(|i| format!("tenant_{i:05}")).collect();
    for rep in 0..ctx.plan.reps {
        for (position, tool) in ctx.tools_for_rep(true, rep).into_iter().enumerate() {
            if matches!(tool, Tool::Sqlx(_)) {
                continue;
            }
            let db = ctx.admin.db_name(&format!("schemas_{n}_{rep}_{position}"));
            ctx.admin.create_pg_db(&db).await?;
            let r = schemas_run(ctx, &tool, &db, &names, (&first, &plus), rep, position).await;
            ctx.admin.drop_pg(std::slice::from_ref(&db)).await;
            r?;
        }
    }
    Ok(())
}

/// One tool on one database of schemas: the first apply, +1, and (avocet) a fresh status.
async fn schemas_run(
    ctx: &Ctx,
    tool: &Tool,
    db: &str,
    names: &[String],
    (first, plus): (&MigrationSet, &MigrationSet),
    rep: u32,
    position: usize,
) -> anyhow::Result<()> {
    let n = names.len();
    let dsn = ctx.admin.pg_dsn(db, false);
    let mut conn = sqlx::PgConnection::connect(&dsn).await?;
    let create: String = names
        .iter()
        .map(|s| format!("CREATE SCHEMA {s};\n"))
        .collect();
    sqlx::raw_sql(&create).execute(&mut conn).await?;
    if matches!(tool, Tool::Floor) {
        let history: String = names
            .iter()
            .map(|s| format!("CREATE TABLE {s}.bench_history (version BIGINT PRIMARY KEY);\n"))
            .collect();
        sqlx::raw_sql(&history).execute(&mut conn).await?;
    }
    conn.close().await?;
    let dsns = vec![dsn.clone(); n];
    match tool {
        Tool::Floor => {
            for (op, sql) in [
                (
                    "first apply",
                    "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL DEFAULT 0);\n",
                ),
                ("+1", ONE_MORE),
            ] {
                let c = case("postgres", plus, n, op);
                let mut s = Sample::new("schemas", &c, tool, rep, position);
                let jobs = schema_floor_jobs(ctx, &dsn, names, sql, op)?;
                let r = pool::run(jobs, P, &ctx.cpu, ctx.plan.tool_timeout()).await;
                s.ok = r.failed == 0;
                s.error = r.error(P.min(n));
                s.wall_ms = Some(r.wall.as_secs_f64() * 1000.0);
                s.per_tenant_ms = s.wall_ms.map(|w| w * P as f64 / n as f64);
                ctx.record(s);
            }
        }
        Tool::Avocet(build) => {
            for (op, set) in [("first apply", first), ("+1", plus)] {
                let c = case("postgres", set, n, op);
                let mut s = Sample::new("schemas", &c, tool, rep, position);
                let none = Path::new("");
                let r = measure(ctx, tool, set, "postgres", &dsns, Some(names), none, &mut s).await;
                if let Err(e) = r {
                    s.fail(format!("{e:#}"));
                }
                ctx.record(s);
            }
            let c = case("postgres", plus, n, "status --refresh");
            let mut s = Sample::new("schemas", &c, tool, rep, position);
            if let Err(e) = status_refresh(ctx, build, plus, &dsns, names, &mut s).await {
                s.fail(format!("{e:#}"));
            }
            ctx.record(s);
        }
        Tool::Sqlx(_) => {}
    }
    Ok(())
}

/// The floor's sessions on the schemas of one database, each running `sql` in its share.
fn schema_floor_jobs(
    ctx: &Ctx,
    dsn: &str,
    names: &[String],
    sql: &str,
    op: &str,
) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::with_capacity(P);
    for worker in 0..P.min(names.len()) {
        let mut text = String::new();
        for s in names.iter().skip(worker).step_by(P) {
            text += &format!(
                "BEGIN;\nSET LOCAL search_path TO {s};\n{sql}INSERT INTO bench_history (version) \
                 VALUES ({});\nCOMMIT;\n",
                if op == "+1" { 2 } else { 1 }
            );
        }
        let tag = op.replace(['+', ' '], "_");
        let file = ctx.write_file(&format!("floor/schemas-{tag}-{worker}.sql"), &text)?;
        jobs.push(tools::psql_job(&file, dsn, false));
    }
    Ok(jobs)
}

/// A fresh daemon's `status --refresh` over the schemas.
async fn status_refresh(
    ctx: &Ctx,
    build: &tools::Build,
    set: &MigrationSet,
    dsns: &[String],
    names: &[String],
    s: &mut Sample,
) -> anyhow::Result<()> {
    let spec = FleetSpec {
        dialect: "postgres",
        migrations: &set.dir,
        concurrency: P,
        dsns,
        schemas: Some(names),
        backup: None,
        census_on_apply: None,
    };
    let tag = format!("schemas-status-{}-{}", names.len(), build.label);
    let daemon = Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await?;
    let args: Vec<String> = [
        "status",
        "--fleet",
        "bench",
        "--refresh",
        "--output",
        "json",
    ]
    .map(String::from)
    .to_vec();
    let started = Instant::now();
    let run = daemon
        .cli(build, &args, &ctx.cpu, ctx.plan.tool_timeout())
        .await;
    let timed_out = run.as_ref().err().and_then(child::timed_out);
    match run {
        Ok(cli) => {
            let check = avocet::check_status(&cli, names.len());
            s.ok = check.is_ok();
            s.error = check.err();
            s.wall_ms = Some(cli.wall.as_secs_f64() * 1000.0);
        }
        Err(e) => match timed_out {
            Some(t) => s.time_out(t),
            None => {
                s.wall_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                s.fail(format!("{e:#}"));
            }
        },
    }
    daemon.end(timed_out.is_some()).await;
    if !s.ok && s.error.is_none() {
        bail!("status failed");
    }
    Ok(())
}
