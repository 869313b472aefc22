//! `avocet-bench`: migrates fleets of fresh local tenant databases with psql (the floor),
//! sqlx-cli and one or more avocet builds, in one invocation, and writes the results to
//! `docs/bench/` and `docs/benchmarks.md`. See `--help` and docs/benchmarks.md.

mod chart;
mod cli;
mod ctx;
mod fleets;
mod machine;
mod report;
mod results;
mod scenarios;
mod sets;
mod stats;
mod tools;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Mutex,
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

use crate::{
    cli::{Args, Plan, ToolKind},
    ctx::Ctx,
    fleets::Admin,
    results::Results,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The repository root: the parent of this crate's manifest directory.
fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

/// Lowercase letters and digits: seconds since 2024 and the pid.
fn run_id() -> String {
    let secs = chrono::Utc::now()
        .timestamp()
        .saturating_sub(1_704_067_200)
        .max(0) as u64;
    format!(
        "{}{}",
        base36(secs),
        base36(u64::from(std::process::id()) % 1296)
    )
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_args(&args)?;
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("binary directory")?.to_path_buf();
    let target_dir = bin_dir.parent().context("target directory")?.to_path_buf();
    let repo = repo_root();
    let out = match (&args.out, plan.smoke) {
        (Some(o), _) => std::path::absolute(o)?,
        (None, true) => target_dir.join("bench-smoke"),
        (None, false) => repo.join("docs"),
    };
    if plan.smoke && out == repo.join("docs") {
        bail!("--smoke never writes to docs/: choose another --out");
    }
    let id = run_id();
    let work_root = args
        .work_dir
        .clone()
        .unwrap_or_else(|| target_dir.join("bench-work"));
    let work = std::path::absolute(work_root.join(&id))?;
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    if args.build {
        tools::build_default(&repo, &target_dir)?;
    }
    let builds = if plan.uses(ToolKind::Avocet) {
        tools::builds(&args.avocet, &bin_dir, &repo)?
    } else {
        Vec::new()
    };
    let sqlx = if plan.uses(ToolKind::Sqlx) {
        tools::sqlx_cli(
            args.sqlx.as_deref(),
            &target_dir.join("bench-tools"),
            plan.smoke,
        )?
    } else {
        None
    };
    let admin = Admin::connect(&args.pg_url, &args.mysql_url, &id).await?;
    let machine = machine::collect(&admin).await;
    let tools_info = json!({
        "avocet": builds,
        "sqlx_cli": sqlx,
        "sqlx_cli_version": sqlx.as_deref().and_then(tools::version_of),
        "bench_commit": tools::tree_commit(&repo),
    });
    println!(
        "run {id}: scratch {}, results to {}",
        work.display(),
        out.display()
    );
    let ctx = Ctx {
        plan,
        admin,
        builds,
        sqlx,
        cpu: stats::Cpu::new(),
        work: work.clone(),
        apply_args: args.apply_arg.clone(),
        strace: tools::strace::Strace::new(&args.pg_url),
        samples: Mutex::default(),
        round_trips: Mutex::default(),
        errors: Mutex::default(),
    };
    let started = chrono::Utc::now();
    let wall = std::time::Instant::now();
    let complete = tokio::select! {
        _ = async { for &s in &ctx.plan.scenarios { scenarios::run(&ctx, s).await } } => true,
        _ = shutdown_signal() => { eprintln!("interrupted: dropping the databases"); false }
    };
    ctx.admin.cleanup().await;
    let results = Results {
        run_id: id.clone(),
        started_at: started.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        complete,
        args: redacted(&args)?,
        plan: serde_json::to_value(&ctx.plan)?,
        machine,
        tools: tools_info,
        samples: ctx.samples.lock().expect("samples").clone(),
        round_trips: ctx.round_trips.lock().expect("round trips").clone(),
        errors: ctx.errors.lock().expect("errors").clone(),
    };
    if !args.keep_work {
        ctx::remove_dir(&work);
    }
    if !complete {
        let partial = work_root.join(format!("{id}-partial.json"));
        std::fs::write(&partial, serde_json::to_string_pretty(&results)?)?;
        println!("partial results: {}", partial.display());
        return Ok(ExitCode::from(130));
    }
    report::write_all(&out, &results)?;
    println!(
        "wrote {}/benchmarks.md and {}/bench/ in {:.1} s",
        out.display(),
        out.display(),
        wall.elapsed().as_secs_f64()
    );
    Ok(exit_code(&results))
}

/// The arguments as JSON, with any password in the server URLs masked.
fn redacted(args: &Args) -> anyhow::Result<serde_json::Value> {
    fn mask(url: &str) -> String {
        match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
                let colon = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
                format!("{}:***{}", &url[..colon], &url[at..])
            }
            _ => url.to_string(),
        }
    }
    let mut a = args.clone();
    a.pg_url = mask(&a.pg_url);
    a.mysql_url = mask(&a.mysql_url);
    Ok(serde_json::to_value(&a)?)
}

/// 1 when a scenario could not run, or (smoke) when avocet failed for a reason that is not
/// expected for now (in a measurement or in the round-trip run).
fn exit_code(r: &Results) -> ExitCode {
    let bad = r
        .samples
        .iter()
        .filter(|s| s.avocet && !s.ok && !s.tolerated)
        .count()
        + r.round_trips
            .iter()
            .filter(|t| t.avocet && t.error.is_some())
            .count();
    if !r.errors.is_empty() {
        println!("{} scenario(s) could not run", r.errors.len());
        return ExitCode::from(1);
    }
    if r.plan["smoke"] == true && bad > 0 {
        println!("smoke: {bad} avocet measurement(s) failed");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
