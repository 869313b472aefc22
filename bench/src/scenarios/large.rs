//! large: one migration of `--large-mb` MB of INSERT lines applied to one fresh tenant per
//! dialect, by the native client (`psql -1 -f`, `mariadb < file`, `sqlite3` with the file
//! wrapped in BEGIN/COMMIT), sqlx-cli and avocet; the row count is checked afterwards.

use std::path::Path;

use anyhow::Context;
use sqlx::Connection as _;

use crate::{
    cli::Dialect,
    ctx::{Ctx, remove_dir},
    fleets,
    results::{Case, Sample},
    sets::{self, MigrationSet},
    tools::{
        self, Tool,
        avocet::{self, Daemon, FleetSpec},
        child,
        pool::{self, Job},
    },
};

/// Runs the large scenario on every selected dialect.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let (migrations, rows) = sets::large(ctx.plan.large_bytes);
    let set = ctx.write_set("large", || migrations)?;
    let file = set.dir.join("0001_load_big.sql");
    let wrap = ctx.write_file(
        "floor/sqlite-large.sql",
        &format!("BEGIN;\n.read '{}'\nCOMMIT;\n", file.display()),
    )?;
    let load = Load {
        set: &set,
        file: &file,
        wrap: &wrap,
        rows,
    };
    for &dialect in &ctx.plan.large_dialects {
        if dialect == Dialect::Mysql && ctx.admin.mysql.is_none() {
            println!("large: MariaDB is not answering; skipped");
            continue;
        }
        let case = Case {
            dialect: dialect.name().into(),
            set: "large".into(),
            n: 1,
            p: 1,
            op: String::new(),
            set_bytes: set.bytes(),
            migrations: 1,
        };
        for rep in 0..ctx.plan.reps {
            let tools = ctx.tools_for_rep_among(true, rep, &ctx.plan.large_tools);
            for (position, tool) in tools.into_iter().enumerate() {
                let mut s = Sample::new("large", &case, &tool, rep, position);
                let t = Tenant::create(ctx, dialect).await;
                match t {
                    Err(e) => s.fail(format!("creating the tenant: {e:#}")),
                    Ok(t) => {
                        if let Err(e) = measure(ctx, &load, &tool, &t, &mut s).await {
                            s.fail(format!("{e:#}"));
                        }
                        t.drop(ctx).await;
                    }
                }
                ctx.record(s);
            }
        }
    }
    Ok(())
}

/// The large migration: its set, its file, the sqlite3 wrapper, its row count.
struct Load<'a> {
    set: &'a MigrationSet,
    file: &'a Path,
    wrap: &'a Path,
    rows: u64,
}

/// One fresh tenant of a dialect.
struct Tenant {
    dialect: Dialect,
    /// Database name, or SQLite file.
    name: String,
    dsn: String,
}

impl Tenant {
    async fn create(ctx: &Ctx, dialect: Dialect) -> anyhow::Result<Tenant> {
        let db = ctx.admin.db_name("large");
        Ok(match dialect {
            Dialect::Postgres => {
                ctx.admin.create_pg_db(&db).await?;
                Tenant {
                    dialect,
                    dsn: ctx.admin.pg_dsn(&db, false),
                    name: db,
                }
            }
            Dialect::Mysql => {
                ctx.admin.create_mysql_db(&db).await?;
                Tenant {
                    dialect,
                    dsn: ctx.admin.mysql_dsn(&db),
                    name: db,
                }
            }
            Dialect::Sqlite => {
                let path = ctx.dir("large-sqlite")?.join("tenant.db");
                Tenant {
                    dialect,
                    dsn: fleets::sqlite_dsn(&path),
                    name: path.display().to_string(),
                }
            }
        })
    }

    async fn drop(self, ctx: &Ctx) {
        match self.dialect {
            Dialect::Postgres => ctx.admin.drop_pg(&[self.name]).await,
            Dialect::Mysql => ctx.admin.drop_mysql_db(&self.name).await,
            Dialect::Sqlite => {
                if let Some(dir) = Path::new(&self.name).parent() {
                    remove_dir(dir);
                }
            }
        }
    }

    async fn count(&self, ctx: &Ctx) -> anyhow::Result<i64> {
        match self.dialect {
            Dialect::Postgres => ctx.admin.pg_count(&self.name, "big").await,
            Dialect::Mysql => ctx.admin.mysql_count(&self.name, "big").await,
            Dialect::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.dsn).await?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM big")
                    .fetch_one(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(n)
            }
        }
    }
}

/// `-h host -P port -u user [-pPASSWORD]` from `mysql://user[:password]@host[:port]`.
fn mariadb_args(url: &str) -> Vec<String> {
    let rest = url
        .trim_start_matches("mysql://")
        .trim_start_matches("mariadb://");
    let (auth, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = auth
        .split_once(':')
        .map_or((auth, None), |(u, p)| (u, Some(p)));
    let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
    let mut a = ["-h", host, "-P", port, "-u", user]
        .map(String::from)
        .to_vec();
    if let Some(p) = password {
        a.push(format!("-p{p}"));
    }
    a
}

fn native_job(ctx: &Ctx, t: &Tenant, file: &Path, wrap: &Path) -> Job {
    match t.dialect {
        Dialect::Postgres => tools::psql_job(file, &t.dsn, true),
        Dialect::Mysql => {
            let mut args = mariadb_args(ctx.admin.mysql_url());
            args.push(t.name.clone());
            Job {
                program: "mariadb".into(),
                args,
                stdin: Some(file.to_path_buf()),
            }
        }
        Dialect::Sqlite => Job {
            program: "sqlite3".into(),
            args: vec![
                "-bail".into(),
                t.name.clone(),
                format!(".read '{}'", wrap.display()),
            ],
            stdin: None,
        },
    }
}

async fn measure(
    ctx: &Ctx,
    load: &Load<'_>,
    tool: &Tool,
    t: &Tenant,
    s: &mut Sample,
) -> anyhow::Result<()> {
    match tool {
        Tool::Floor | Tool::Sqlx(_) => {
            let job = match tool {
                Tool::Sqlx(sqlx) => tools::sqlx_job(sqlx, "run", &load.set.dir, &t.dsn),
                _ => native_job(ctx, t, load.file, load.wrap),
            };
            let r = pool::run(vec![job], 1, &ctx.cpu, ctx.plan.tool_timeout()).await;
            if let Some(t) = r.timed_out {
                s.time_out(t);
                return Ok(());
            }
            s.wall_ms = Some(r.wall.as_secs_f64() * 1000.0);
            s.client_cpu_ms = Some(r.cpu_ms);
            s.error = r.first_error;
        }
        Tool::Avocet(build) => {
            let dsns = [t.dsn.clone()];
            let spec = FleetSpec {
                dialect: t.dialect.name(),
                migrations: &load.set.dir,
                concurrency: 1,
                dsns: &dsns,
                schemas: None,
                backup: None,
                census_on_apply: None,
            };
            let tag = format!("large-{}-{}-{}", t.dialect.name(), build.label, s.rep);
            let daemon = Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await?;
            let cpu_before = ctx.cpu.process_ms(daemon.pid()).ok();
            let args = ["apply", "--fleet", "bench", "--output", "json"].map(String::from);
            let run = daemon
                .cli(build, &args, &ctx.cpu, ctx.plan.tool_timeout())
                .await;
            let timed_out = run.as_ref().err().and_then(child::timed_out);
            s.daemon = daemon.figures(&ctx.cpu).map(|mut f| {
                f.cpu_ms -= cpu_before.unwrap_or(0.0);
                f
            });
            let log = daemon.log_tail();
            daemon.end(timed_out.is_some()).await;
            if let Some(t) = timed_out {
                s.daemon = None;
                s.time_out(t);
                return Ok(());
            }
            let run = run?;
            s.wall_ms = Some(run.wall.as_secs_f64() * 1000.0);
            s.client_cpu_ms = Some(run.cpu_ms);
            s.error = avocet::check_apply(&run, 1)
                .err()
                .map(|e| format!("{e} | avocetd log: {}", pool::tail(&log, 400)));
        }
    }
    if s.error.is_none() {
        let n = t.count(ctx).await.context("counting rows of big")?;
        if n != load.rows as i64 {
            s.error = Some(format!("table big has {n} rows, expected {}", load.rows));
        }
    }
    s.ok = s.error.is_none();
    Ok(())
}
