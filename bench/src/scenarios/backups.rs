//! `backups`: what a backup before each tenant's risky migration costs. N PostgreSQL
//! databases (copies of one template on the heavy set, about 20,000 rows each) get one more
//! migration that drops a column, applied by avocet at P = 8 with the fleet's
//! `[fleets.bench.backup] when = "never"` and then `"destructive"` (a `pg_dump -Fc` of every
//! tenant right before it, under its lock, two at once per server), in the same run on
//! fresh copies. Wall time of the apply, and the bytes of the backup files written.

use std::path::Path;

use crate::{
    ctx::Ctx,
    results::{Case, Sample},
    sets::{self, MigrationSet},
    tools::{
        Tool,
        avocet::{self, Daemon, FleetSpec},
        child,
    },
};

use super::reads;

/// Parallelism of the apply.
const P: usize = 8;

/// The destructive migration every tenant gets: version 21 of the heavy set.
const DROP: &str = "ALTER TABLE tasks DROP COLUMN done_at;\n";

/// The policies compared, in run order.
const POLICIES: [&str; 2] = ["never", "destructive"];

/// Runs `backups` on the smallest configured fleet size (100 by default).
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let n = ctx.plan.min_n();
    let base = ctx.write_set("heavy", sets::heavy)?;
    let plus = ctx.write_set("heavy-plus-drop", || {
        let mut m = sets::heavy();
        m.push(sets::Migration {
            version: m.len() as i64 + 1,
            name: "drop_tasks_done_at".into(),
            sql: DROP.into(),
        });
        m
    })?;
    let tpl = ctx.admin.db_name("backups_tpl");
    ctx.admin.create_pg_db(&tpl).await?;
    let r = async {
        let dsn = ctx.admin.pg_dsn(&tpl, false);
        reads::prepare_template(ctx, "postgres", &base, &dsn).await?;
        ctx.admin.wait_idle(&tpl).await?;
        for rep in 0..ctx.plan.reps {
            for tool in ctx.tools_for_rep(false, rep) {
                let Tool::Avocet(_) = &tool else { continue };
                for (position, when) in POLICIES.into_iter().enumerate() {
                    let c = Case {
                        dialect: "postgres".into(),
                        set: plus.name.clone(),
                        n,
                        p: P,
                        op: format!("when = {when}"),
                        set_bytes: plus.bytes(),
                        migrations: 1,
                    };
                    let mut s = Sample::new("backups", &c, &tool, rep, position);
                    let fleet = ctx.admin.create_pg_fleet(n, Some(&tpl)).await?;
                    let dsns: Vec<String> = fleet
                        .names
                        .iter()
                        .map(|d| ctx.admin.pg_dsn(d, false))
                        .collect();
                    let files = ctx.dir(&format!("backups-{}-{when}-{rep}", tool.label()))?;
                    let r = measure(ctx, &tool, &plus, &dsns, when, &files, &mut s).await;
                    ctx.admin.drop_pg(&fleet.names).await;
                    crate::ctx::remove_dir(&files);
                    if let Err(e) = r {
                        s.fail(format!("{e:#}"));
                    }
                    ctx.record(s);
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    ctx.admin.drop_pg(&[tpl]).await;
    r
}

/// One apply of `set` to `dsns` by `tool` with the backup policy `when`, files into `files`.
async fn measure(
    ctx: &Ctx,
    tool: &Tool,
    set: &MigrationSet,
    dsns: &[String],
    when: &str,
    files: &Path,
    s: &mut Sample,
) -> anyhow::Result<()> {
    let Tool::Avocet(build) = tool else {
        return Ok(());
    };
    let n = dsns.len();
    let policy = format!(
        "when = \"{when}\"\nto = {}\nkeep = 1\n",
        serde_json::to_string(&format!("{}/{{tenant}}", files.display()))?
    );
    let spec = FleetSpec {
        dialect: "postgres",
        migrations: &set.dir,
        concurrency: P,
        dsns,
        schemas: None,
        backup: Some(&policy),
        census_on_apply: None,
    };
    let tag = format!("backups-{n}-{}-{when}-{}", build.label, s.rep);
    let daemon = Daemon::start(build, &spec, &ctx.dir("daemons")?, &tag).await?;
    let args = super::apply::avocet_apply_args(ctx, P, vec!["--accept-data-loss".into()]);
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
            let (count, bytes) = written(files);
            s.backup_bytes = Some(bytes);
            let expected = if when == "never" { 0 } else { n };
            if s.ok && count != expected {
                s.fail(format!("{count} backup files, {expected} expected"));
            }
        }
        Err(e) => match timed_out {
            Some(t) => s.time_out(t),
            None => s.fail(format!("{e:#} | avocetd log: {}", daemon.log_tail())),
        },
    }
    daemon.end(timed_out.is_some()).await;
    s.per_tenant_ms = s.wall_ms.map(|w| w * P as f64 / n as f64);
    Ok(())
}

/// The backup files under `dir` (one directory per tenant): how many, and their bytes.
fn written(dir: &Path) -> (usize, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for tenant in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(tenant.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(m) = file.metadata()
                && m.is_file()
            {
                count += 1;
                bytes += m.len();
            }
        }
    }
    (count, bytes)
}
