//! Fleet benchmark: applies the sample set to N tenants at several concurrency limits and
//! writes the timings to `target/bench/fleet-bench.json`.
//!
//! `cargo run --release -p avocet-tests --bin fleet-bench -- --tenants 100`

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, ensure};
use avocet_daemon::DialectKind;
use avocet_tests::{FLEET, Fleet, TestDaemon, pb, request};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Tenants per dialect.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Concurrency limits to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<u32>,
    /// Dialects: postgres, mysql, sqlite.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    dialects: Vec<DialectKind>,
    /// Where to write the results.
    #[arg(long, default_value = "target/bench/fleet-bench.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut results = Vec::new();
    for dialect in &args.dialects {
        let fleet = match dialect {
            DialectKind::Postgres => Fleet::postgres(args.tenants).await?,
            DialectKind::Mysql => Fleet::mysql(args.tenants).await?,
            DialectKind::Sqlite => Fleet::sqlite(args.tenants).await?,
        };
        let daemon = TestDaemon::sample(&fleet, Duration::from_secs(30)).await?;
        for &concurrency in &args.concurrency {
            let run = daemon
                .apply(pb::ApplyRequest {
                    concurrency,
                    ..request()
                })
                .await?;
            let f = *run.finished().context("rollout finished")?;
            ensure!(f.failed == 0, "{f:?}");
            let seconds = f.duration_ms as f64 / 1000.0;
            let row = json!({
                "dialect": dialect.as_str(),
                "tenants": args.tenants,
                "concurrency": concurrency,
                "migrations": f.migrations_run,
                "duration_ms": f.duration_ms,
                "tenants_per_s": args.tenants as f64 / seconds,
                "migrations_per_s": f64::from(f.migrations_run) / seconds,
            });
            println!("{row}");
            results.push(row);
            let back = daemon
                .rollback_with(pb::RollbackRequest {
                    fleet: FLEET.into(),
                    target: Some(pb::rollback_request::Target::ToVersion(0)),
                    concurrency: 32,
                    ..Default::default()
                })
                .await?;
            ensure!(back.finished().context("rollback finished")?.failed == 0);
        }
        daemon.stop().await?;
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
