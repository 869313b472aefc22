//! reads: `avocet status` and `avocet plan` on a fresh daemon (first call, then the same
//! call again) versus a `sqlx migrate info` loop with 8 workers, over fleets already on the
//! light set; the floor is the connection rate: 8 workers in the bench that connect to each
//! tenant, read its history table in one `SELECT` and close. The fleet is copied from one template tenant migrated by avocet, into which
//! sqlx's own history rows are written with sqlx's library (same checksums as sqlx-cli), so
//! both tools read a fully migrated history of their own.

use std::path::Path;

use anyhow::{Context, bail};
use sqlx::{Connection as _, migrate::Migrate as _};

use crate::{
    ctx::{Ctx, remove_dir},
    fleets,
    results::{Case, Sample},
    sets::{Flavour, MigrationSet},
    tools::{
        self, Tool,
        avocet::{self, Daemon, FleetSpec},
        child, pool,
    },
};

/// Workers of the sqlx-cli loop.
const SQLX_WORKERS: usize = 8;

/// Runs every reads case; a case that cannot be set up is recorded as a scenario error.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let pg = ctx.light(Flavour::Postgres)?;
    for &n in &ctx.plan.reads_pg_n {
        if let Err(e) = pg_case(ctx, &pg, n).await {
            ctx.scenario_error(&format!("reads postgres N={n}"), &e);
        }
    }
    let sqlite = ctx.light(Flavour::Sqlite)?;
    let mut ns = ctx.plan.reads_sqlite_n.clone();
    ns.dedup();
    for n in ns {
        if let Err(e) = sqlite_case(ctx, &sqlite, n).await {
            ctx.scenario_error(&format!("reads sqlite N={n}"), &e);
        }
    }
    Ok(())
}

async fn pg_case(ctx: &Ctx, set: &MigrationSet, n: usize) -> anyhow::Result<()> {
    let tpl = ctx.admin.db_name("tpl");
    ctx.admin.create_pg_db(&tpl).await?;
    let r = async {
        prepare_template(ctx, "postgres", set, &ctx.admin.pg_dsn(&tpl, false)).await?;
        ctx.admin.wait_idle(&tpl).await?;
        let fleet = ctx.admin.create_pg_fleet(n, Some(&tpl)).await?;
        let dsns: Vec<String> = fleet
            .names
            .iter()
            .map(|d| ctx.admin.pg_dsn(d, false))
            .collect();
        let read = ReadFleet {
            dialect: "postgres",
            set,
            dsns: &dsns,
        };
        let r = measure_all(ctx, &read).await;
        ctx.admin.drop_pg(&fleet.names).await;
        r
    }
    .await;
    ctx.admin.drop_pg(&[tpl]).await;
    r
}

async fn sqlite_case(ctx: &Ctx, set: &MigrationSet, n: usize) -> anyhow::Result<()> {
    let dir = ctx.dir(&format!("reads-sqlite-{n}"))?;
    let r = async {
        let tpl = dir.join("template.db");
        prepare_template(ctx, "sqlite", set, &fleets::sqlite_dsn(&tpl)).await?;
        let paths = fleets::sqlite_paths(&dir, n);
        for p in &paths {
            copy_sqlite(&tpl, p)?;
        }
        let dsns: Vec<String> = paths.iter().map(|p| fleets::sqlite_dsn(p)).collect();
        let fleet = ReadFleet {
            dialect: "sqlite",
            set,
            dsns: &dsns,
        };
        measure_all(ctx, &fleet).await
    }
    .await;
    remove_dir(&dir);
    r
}

/// Copies a SQLite file with its WAL, if one was left.
fn copy_sqlite(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    let wal = from.with_extension("db-wal");
    if wal.exists() {
        std::fs::copy(&wal, to.with_extension("db-wal"))?;
    }
    Ok(())
}

/// Migrates the template tenant with the first avocet build (or, without one, with sqlx's
/// migrator), then writes sqlx's history rows when sqlx-cli is measured.
pub(crate) async fn prepare_template(
    ctx: &Ctx,
    dialect: &str,
    set: &MigrationSet,
    dsn: &str,
) -> anyhow::Result<()> {
    let Some(build) = ctx.builds.first() else {
        let migrator = sqlx::migrate::Migrator::new(set.dir.as_path()).await?;
        match dialect {
            "postgres" => {
                migrator
                    .run_direct(&mut sqlx::PgConnection::connect(dsn).await?)
                    .await?
            }
            _ => {
                migrator
                    .run_direct(&mut sqlx::SqliteConnection::connect(dsn).await?)
                    .await?
            }
        }
        return Ok(());
    };
    let dsns = [dsn.to_string()];
    let spec = FleetSpec {
        dialect,
        migrations: &set.dir,
        concurrency: 1,
        dsns: &dsns,
        schemas: None,
        backup: None,
        census_on_apply: None,
    };
    let daemon = Daemon::start(
        build,
        &spec,
        &ctx.dir("daemons")?,
        &format!("reads-template-{dialect}"),
    )
    .await?;
    let args = ["apply", "--fleet", "bench", "--output", "json"].map(String::from);
    let run = daemon
        .cli(build, &args, &ctx.cpu, ctx.plan.tool_timeout())
        .await;
    let log = daemon.log_tail();
    let timed_out = run.as_ref().err().and_then(child::timed_out);
    daemon.end(timed_out.is_some()).await;
    if let Err(e) = avocet::check_apply(&run?, 1) {
        bail!(
            "migrating the template with {}: {e} | avocetd log: {log}",
            build.label
        );
    }
    if ctx.sqlx.is_some() {
        write_sqlx_history(dialect, set, dsn).await?;
    }
    Ok(())
}

/// Creates `_sqlx_migrations` and inserts the row sqlx-cli would have written for each
/// migration (checksums from sqlx's own loader).
async fn write_sqlx_history(dialect: &str, set: &MigrationSet, dsn: &str) -> anyhow::Result<()> {
    let migrator = sqlx::migrate::Migrator::new(set.dir.as_path()).await?;
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES ($1, $2, TRUE, $3, 0)";
    if dialect == "postgres" {
        let mut conn = sqlx::PgConnection::connect(dsn).await?;
        conn.ensure_migrations_table().await?;
        for m in migrator.iter() {
            let q = sqlx::query(insert)
                .bind(m.version)
                .bind(&*m.description)
                .bind(&*m.checksum);
            q.execute(&mut conn).await?;
        }
        conn.close().await?;
    } else {
        let insert = insert.replace('$', "?");
        let mut conn = sqlx::SqliteConnection::connect(dsn).await?;
        conn.ensure_migrations_table().await?;
        for m in migrator.iter() {
            let q = sqlx::query(&insert)
                .bind(m.version)
                .bind(&*m.description)
                .bind(&*m.checksum);
            q.execute(&mut conn).await?;
        }
        conn.close().await?;
    }
    Ok(())
}

/// A migrated fleet to read.
struct ReadFleet<'a> {
    dialect: &'a str,
    set: &'a MigrationSet,
    dsns: &'a [String],
}

impl ReadFleet<'_> {
    fn case(&self, op: &str) -> Case {
        Case {
            dialect: self.dialect.into(),
            set: self.set.name.clone(),
            n: self.dsns.len(),
            p: SQLX_WORKERS,
            op: op.into(),
            set_bytes: self.set.bytes(),
            migrations: self.set.migrations.len(),
        }
    }
}

async fn measure_all(ctx: &Ctx, f: &ReadFleet<'_>) -> anyhow::Result<()> {
    let n = f.dsns.len();
    for rep in 0..ctx.plan.reps {
        for (position, tool) in ctx.tools_for_rep(true, rep).into_iter().enumerate() {
            match &tool {
                Tool::Sqlx(sqlx) => {
                    let c = f.case("migrate info");
                    let mut s = Sample::new("reads", &c, &tool, rep, position);
                    let jobs = f
                        .dsns
                        .iter()
                        .map(|d| tools::sqlx_job(sqlx, "info", &f.set.dir, d))
                        .collect();
                    let r = pool::run(jobs, SQLX_WORKERS, &ctx.cpu, ctx.plan.tool_timeout()).await;
                    s.ok = r.failed == 0;
                    s.error = r.error(n);
                    if let Some(t) = r.timed_out {
                        s.time_out(t);
                    } else {
                        s.wall_ms = Some(r.wall.as_secs_f64() * 1000.0);
                        s.client_cpu_ms = Some(r.cpu_ms);
                    }
                    ctx.record(s);
                }
                Tool::Avocet(build) => {
                    for verb in ["status", "plan"] {
                        avocet_reads(ctx, f, build, verb, rep, position).await?;
                    }
                }
                Tool::Floor => {
                    // In the row of avocet's fresh `status`, the read it is the floor of.
                    let c = f.case("status");
                    let mut s = Sample::new("reads", &c, &tool, rep, position);
                    let cpu_before = ctx.cpu.process_ms(std::process::id()).ok();
                    let start = std::time::Instant::now();
                    let read = floor_reads(f).await;
                    s.ok = read.is_ok();
                    s.error = read.err().map(|e| format!("{e:#}"));
                    s.wall_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
                    s.client_cpu_ms = ctx
                        .cpu
                        .process_ms(std::process::id())
                        .ok()
                        .zip(cpu_before)
                        .map(|(after, before)| after - before);
                    ctx.record(s);
                }
            }
        }
    }
    Ok(())
}

/// The connection-rate floor of a fresh read: [`SQLX_WORKERS`] workers in this process,
/// each connecting to its next tenant (the DSN as avocet gets it: TLS when the server
/// offers it), reading its history table in one `SELECT`, and closing.
async fn floor_reads(f: &ReadFleet<'_>) -> anyhow::Result<()> {
    use futures::{StreamExt as _, TryStreamExt as _};
    const READ: &str = "SELECT * FROM avocet_migrations";
    futures::stream::iter(f.dsns.iter())
        .map(|dsn| async move {
            match f.dialect {
                "postgres" => {
                    let mut conn = sqlx::PgConnection::connect(dsn).await?;
                    sqlx::raw_sql(READ).fetch_all(&mut conn).await?;
                    conn.close().await
                }
                _ => {
                    let mut conn = sqlx::SqliteConnection::connect(dsn).await?;
                    sqlx::raw_sql(READ).fetch_all(&mut conn).await?;
                    conn.close().await
                }
            }
            .with_context(|| format!("reading {dsn}"))
        })
        .buffer_unordered(SQLX_WORKERS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// A fresh daemon, then `verb` twice: the first call and the same call again.
async fn avocet_reads(
    ctx: &Ctx,
    f: &ReadFleet<'_>,
    build: &tools::Build,
    verb: &str,
    rep: u32,
    position: usize,
) -> anyhow::Result<()> {
    let n = f.dsns.len();
    let tool = Tool::Avocet(build.clone());
    let spec = FleetSpec {
        dialect: f.dialect,
        migrations: &f.set.dir,
        concurrency: SQLX_WORKERS,
        dsns: f.dsns,
        schemas: None,
        backup: None,
        census_on_apply: None,
    };
    let tag = format!("reads-{}-{n}-{}-{verb}-{rep}", f.dialect, build.label);
    let daemon = Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await;
    let mut args: Vec<String> = [verb, "--fleet", "bench", "--output", "json"]
        .map(String::from)
        .to_vec();
    if verb == "status" && build.status_refresh {
        args.push("--refresh".into());
    }
    let mut timed_out = None;
    for op in [verb.to_string(), format!("{verb}, again")] {
        let c = f.case(&op);
        let mut s = Sample::new("reads", &c, &tool, rep, position);
        match (&daemon, timed_out) {
            (Err(e), _) => s.fail(format!("{e:#}")),
            (Ok(_), Some(t)) => s.fail(format!("not run: the first call {t}")),
            (Ok(d), None) => {
                let cpu_before = ctx.cpu.process_ms(d.pid()).ok();
                match d.cli(build, &args, &ctx.cpu, ctx.plan.tool_timeout()).await {
                    Err(e) => match child::timed_out(&e) {
                        Some(t) => {
                            s.time_out(t);
                            timed_out = Some(t);
                        }
                        None => s.fail(format!("{e:#}")),
                    },
                    Ok(run) => {
                        let check = if verb == "status" {
                            avocet::check_status(&run, n)
                        } else {
                            avocet::check_plan(&run, n)
                        };
                        s.ok = check.is_ok();
                        s.error = check.err();
                        s.wall_ms = Some(run.wall.as_secs_f64() * 1000.0);
                        s.client_cpu_ms = Some(run.cpu_ms);
                        s.daemon = d.figures(&ctx.cpu).map(|mut f| {
                            f.cpu_ms -= cpu_before.unwrap_or(0.0);
                            f
                        });
                    }
                }
            }
        }
        ctx.record(s);
    }
    if let Ok(d) = daemon {
        d.end(timed_out.is_some()).await;
    }
    Ok(())
}
