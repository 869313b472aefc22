//! Command-line flags and the run plan they resolve to (with the `--smoke` defaults).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Compares avocet with psql and sqlx-cli on fleets of fresh local tenant databases.
///
/// Build the avocet binaries first (`cargo build --release --bins`, or pass `--build`), then
/// `cargo run --release -p avocet-bench`. Results go to `docs/bench/` and `docs/benchmarks.md`
/// (with `--smoke`: to `<target>/bench-smoke/`).
#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "avocet-bench", version)]
pub(crate) struct Args {
    /// Quick check of the whole bench: N=3, P=1,2, 1 rep, 1 MB large migration, reads over 3
    /// tenants; writes to `<target>/bench-smoke/`, never to docs/. Exits non-zero when avocet
    /// failed other than on TLS or a not-yet-existing flag.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) only: Vec<Scenario>,
    /// Fleet sizes for apply and grouped (default 100,1000; smoke 3). tls uses the smallest.
    #[arg(long, value_delimiter = ',')]
    pub(crate) n: Vec<usize>,
    /// Parallelism for apply (default 1,8; smoke 1,2). tls and grouped use the largest.
    #[arg(long, value_delimiter = ',')]
    pub(crate) p: Vec<usize>,
    /// Repetitions of every measurement (default 3; smoke 1).
    #[arg(long)]
    pub(crate) reps: Option<u32>,
    /// Migration sets for apply (default: light,heavy).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) sets: Vec<SetKind>,
    /// Apply cases as SET:N:P, comma-separated (e.g. `light:100:1,light:100:8,heavy:100:8`),
    /// run in this order; replaces the cross product of --sets, --n and --p for apply (tls and
    /// grouped still use --n and --p).
    #[arg(long, value_delimiter = ',', value_parser = parse_case, value_name = "SET:N:P")]
    pub(crate) cases: Vec<CaseSpec>,
    /// Longest run of one tool in one measurement, in seconds; past it the tool (its process
    /// group, and for avocet its avocetd) is killed and the repetition counts as failed.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub(crate) tool_timeout: u64,
    /// Size of the large migration in MB of 10^6 bytes (default 50; smoke 1).
    #[arg(long)]
    pub(crate) large_mb: Option<f64>,
    /// Dialects of the large scenario (default: postgres,mysql,sqlite).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) large_dialects: Vec<Dialect>,
    /// Tools of the large scenario, within --tools (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) large_tools: Vec<ToolKind>,
    /// PostgreSQL fleet sizes for reads (default 1000; smoke 3).
    #[arg(long, value_delimiter = ',')]
    pub(crate) reads_pg_n: Vec<usize>,
    /// SQLite fleet sizes for reads (default 1000,10000; smoke 3).
    #[arg(long, value_delimiter = ',')]
    pub(crate) reads_sqlite_n: Vec<usize>,
    /// Registered SQLite tenants of the known scenario (default 100000; smoke 3).
    #[arg(long)]
    pub(crate) known_n: Option<usize>,
    /// PostgreSQL databases of one-more (default 1000; smoke 3).
    #[arg(long, value_delimiter = ',')]
    pub(crate) one_more_pg_n: Vec<usize>,
    /// SQLite files of one-more (default 10000; smoke 3).
    #[arg(long, value_delimiter = ',')]
    pub(crate) one_more_sqlite_n: Vec<usize>,
    /// Schemas of one database in the schemas scenario (default 2000,10000; smoke 3).
    #[arg(long, value_delimiter = ',')]
    pub(crate) schemas_n: Vec<usize>,
    /// SQLite tenants of the census scenario (default 10000; smoke 3).
    #[arg(long)]
    pub(crate) census_sqlite_n: Option<usize>,
    /// PostgreSQL databases of the census scenario (default 1000; smoke 3).
    #[arg(long)]
    pub(crate) census_pg_n: Option<usize>,
    /// Schemas of one PostgreSQL database in the census scenario (default 2000; smoke 3).
    #[arg(long)]
    pub(crate) census_schemas_n: Option<usize>,
    /// Migrations of the set the publish scenario publishes (default 285, about 1 MB;
    /// smoke 20).
    #[arg(long)]
    pub(crate) publish_migrations: Option<usize>,
    /// Tools to run, comma-separated (default: all). `avocet` means every `--avocet` build.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) tools: Vec<ToolKind>,
    /// An avocet build to measure, as LABEL=DIR where DIR holds `avocetd` and `avocet`.
    /// Repeatable (e.g. `--avocet before=/tmp/old/release --avocet after=target/release`).
    /// Default: `avocet=` the directory of this binary.
    #[arg(long = "avocet", value_name = "LABEL=DIR")]
    pub(crate) avocet: Vec<String>,
    /// Build the default avocet binaries first (`cargo build --release -p avocet-daemon -p
    /// avocet-client` into this binary's target directory).
    #[arg(long)]
    pub(crate) build: bool,
    /// Extra argument appended to every `avocet apply` (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) apply_arg: Vec<String>,
    /// The sqlx-cli binary (default: `sqlx` on PATH, else the cached install under
    /// `<target>/bench-tools`, else installed there; with --smoke never installed).
    #[arg(long)]
    pub(crate) sqlx: Option<PathBuf>,
    /// Directory that receives `benchmarks.md` and `bench/` (default: `<repo>/docs`; smoke:
    /// `<target>/bench-smoke`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Scratch directory for migration sets, configurations, SQLite files and logs (default
    /// `<target>/bench-work`); the run's subdirectory is removed at the end.
    #[arg(long)]
    pub(crate) work_dir: Option<PathBuf>,
    /// Keep the run's scratch directory (logs, configurations) instead of removing it.
    #[arg(long)]
    pub(crate) keep_work: bool,
    /// PostgreSQL server, user and password, without a database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub(crate) pg_url: String,
    /// MariaDB/MySQL server, user and password, without a database.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    pub(crate) mysql_url: String,
}

/// A scenario of the bench.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scenario {
    /// Light and heavy sets on fresh PostgreSQL fleets.
    Apply,
    /// status / plan versus `sqlx migrate info` on migrated fleets.
    Reads,
    /// The light apply with `sslmode=require`.
    Tls,
    /// One big migration on one tenant per dialect.
    Large,
    /// The light apply with one transaction per tenant.
    Grouped,
    /// `status` from last-known state over a large registered SQLite fleet.
    Known,
    /// One more migration on every tenant of a migrated fleet (databases, SQLite files).
    #[value(name = "one-more")]
    OneMore,
    /// Schema-per-tenant: first apply, +1 migration and a fresh status over N schemas.
    Schemas,
    /// A destructive migration on the heavy set with `[backup] when = "destructive"`
    /// against `"never"`: what the backups cost in wall time and bytes.
    Backups,
    /// `avocet census` over a migrated SQLite fleet, and the apply with `census_on_apply`
    /// on and off.
    Census,
    /// `avocet sets publish` of a 285-migration set (about 1 MB) and the first `plan` of
    /// it, on a SQLite and on a PostgreSQL control store.
    Publish,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub(crate) const ALL: [Scenario; 11] = [
        Scenario::Apply,
        Scenario::Grouped,
        Scenario::Tls,
        Scenario::Reads,
        Scenario::Known,
        Scenario::OneMore,
        Scenario::Schemas,
        Scenario::Backups,
        Scenario::Census,
        Scenario::Publish,
        Scenario::Large,
    ];

    /// Lowercase name, as in `--only`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Apply => "apply",
            Scenario::Reads => "reads",
            Scenario::Tls => "tls",
            Scenario::Large => "large",
            Scenario::Grouped => "grouped",
            Scenario::Known => "known",
            Scenario::OneMore => "one-more",
            Scenario::Schemas => "schemas",
            Scenario::Backups => "backups",
            Scenario::Census => "census",
            Scenario::Publish => "publish",
        }
    }
}

/// One apply case: a set, a fleet size and a parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct CaseSpec {
    /// The set.
    pub(crate) set: SetKind,
    /// Tenants.
    pub(crate) n: usize,
    /// Parallelism.
    pub(crate) p: usize,
}

/// Parses `SET:N:P` (e.g. `light:100:8`).
fn parse_case(s: &str) -> Result<CaseSpec, String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let [set, n, p] = parts.as_slice() else {
        return Err(format!("{s:?}: expected SET:N:P, e.g. light:100:8"));
    };
    let set = SetKind::from_str(set, true)
        .map_err(|_| format!("{s:?}: unknown set {set:?} (expected light or heavy)"))?;
    let number = |what: &str, v: &str| match v.parse::<usize>() {
        Ok(x) if x > 0 => Ok(x),
        _ => Err(format!(
            "{s:?}: {what} must be a positive integer, not {v:?}"
        )),
    };
    Ok(CaseSpec {
        set,
        n: number("N", n)?,
        p: number("P", p)?,
    })
}

/// A generated migration set for apply.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SetKind {
    /// 20 small DDL migrations.
    Light,
    /// 20 migrations with seed data, a backfill, indexes and a trigger.
    Heavy,
}

/// A database engine.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MariaDB / MySQL.
    Mysql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// avocet's dialect name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// A family of tools.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ToolKind {
    /// psql (or the dialect's native client), one process per tenant.
    Floor,
    /// sqlx-cli, one process per tenant.
    Sqlx,
    /// Every avocet build.
    Avocet,
}

/// What to run, with defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    /// Smoke mode.
    pub(crate) smoke: bool,
    /// Scenarios in run order.
    pub(crate) scenarios: Vec<Scenario>,
    /// Fleet sizes for apply and grouped.
    pub(crate) ns: Vec<usize>,
    /// Parallelism values for apply.
    pub(crate) ps: Vec<usize>,
    /// Repetitions.
    pub(crate) reps: u32,
    /// Sets for apply (`--sets`; the apply scenario runs `cases`).
    pub(crate) sets: Vec<SetKind>,
    /// The apply cases, in run order: `--cases`, or sets × ns × ps.
    pub(crate) cases: Vec<CaseSpec>,
    /// Per-tool timeout of one measurement, in seconds.
    pub(crate) tool_timeout_s: u64,
    /// Size of the large migration in bytes.
    pub(crate) large_bytes: u64,
    /// Dialects of the large scenario.
    pub(crate) large_dialects: Vec<Dialect>,
    /// PostgreSQL sizes for reads.
    pub(crate) reads_pg_n: Vec<usize>,
    /// SQLite sizes for reads.
    pub(crate) reads_sqlite_n: Vec<usize>,
    /// Registered tenants of the known scenario.
    pub(crate) known_n: usize,
    /// PostgreSQL databases of one-more.
    pub(crate) one_more_pg_n: Vec<usize>,
    /// SQLite files of one-more.
    pub(crate) one_more_sqlite_n: Vec<usize>,
    /// Schemas of the schemas scenario.
    pub(crate) schemas_n: Vec<usize>,
    /// SQLite tenants of the census scenario.
    pub(crate) census_sqlite_n: usize,
    /// PostgreSQL databases of the census scenario.
    pub(crate) census_pg_n: usize,
    /// Schemas of one PostgreSQL database in the census scenario.
    pub(crate) census_schemas_n: usize,
    /// Migrations of the published set of the publish scenario.
    pub(crate) publish_migrations: usize,
    /// Tool families.
    pub(crate) tools: Vec<ToolKind>,
    /// Tool families of the large scenario (within `tools`).
    pub(crate) large_tools: Vec<ToolKind>,
    /// Shortest wait after a run before reading `pg_stat_database`.
    pub(crate) settle_ms: u64,
}

fn or<T: Clone>(given: &[T], full: &[T], smoke: &[T], is_smoke: bool) -> Vec<T> {
    if !given.is_empty() {
        given.to_vec()
    } else if is_smoke {
        smoke.to_vec()
    } else {
        full.to_vec()
    }
}

impl Plan {
    /// Resolves the flags against the full or smoke defaults.
    pub(crate) fn from_args(a: &Args) -> anyhow::Result<Plan> {
        let s = a.smoke;
        let scenarios = Scenario::ALL
            .into_iter()
            .filter(|sc| a.only.is_empty() || a.only.contains(sc))
            .collect();
        let all_tools = [ToolKind::Floor, ToolKind::Sqlx, ToolKind::Avocet];
        let mut plan = Plan {
            smoke: s,
            scenarios,
            ns: or(&a.n, &[100, 1000], &[3], s),
            ps: or(&a.p, &[1, 8], &[1, 2], s),
            reps: a.reps.unwrap_or(if s { 1 } else { 3 }),
            sets: or(
                &a.sets,
                &[SetKind::Light, SetKind::Heavy],
                &[SetKind::Light, SetKind::Heavy],
                s,
            ),
            large_bytes: (a.large_mb.unwrap_or(if s { 1.0 } else { 50.0 }) * 1_000_000.0) as u64,
            large_dialects: or(
                &a.large_dialects,
                &[Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite],
                &[Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite],
                s,
            ),
            reads_pg_n: or(&a.reads_pg_n, &[1000], &[3], s),
            one_more_pg_n: or(&a.one_more_pg_n, &[1000], &[3], s),
            one_more_sqlite_n: or(&a.one_more_sqlite_n, &[10000], &[3], s),
            schemas_n: or(&a.schemas_n, &[2000, 10000], &[3], s),
            reads_sqlite_n: or(&a.reads_sqlite_n, &[1000, 10_000], &[3], s),
            known_n: a.known_n.unwrap_or(if s { 3 } else { 100_000 }),
            census_sqlite_n: a
                .census_sqlite_n
                .unwrap_or(if s { 3 } else { 10_000 })
                .max(1),
            census_pg_n: a.census_pg_n.unwrap_or(if s { 3 } else { 1000 }).max(1),
            census_schemas_n: a
                .census_schemas_n
                .unwrap_or(if s { 3 } else { 2000 })
                .max(1),
            publish_migrations: a
                .publish_migrations
                .unwrap_or(if s { 20 } else { 285 })
                .max(1),
            cases: a.cases.clone(),
            tool_timeout_s: a.tool_timeout,
            tools: or(&a.tools, &all_tools, &all_tools, s),
            large_tools: or(&a.large_tools, &all_tools, &all_tools, s),
            settle_ms: if s { 250 } else { 1500 },
        };
        if plan.reps == 0 || plan.ns.contains(&0) || plan.ps.contains(&0) || plan.known_n == 0 {
            bail!("--reps, --n, --p and --known-n must be positive");
        }
        if !(1..=7 * 86_400).contains(&plan.tool_timeout_s) {
            bail!("--tool-timeout must be between 1 s and 7 days");
        }
        if plan.cases.is_empty() {
            for &set in &plan.sets {
                for &n in &plan.ns {
                    for &p in &plan.ps {
                        plan.cases.push(CaseSpec { set, n, p });
                    }
                }
            }
        }
        if plan.large_bytes == 0 {
            bail!("--large-mb must be positive");
        }
        Ok(plan)
    }

    /// Whether a tool family is selected.
    pub(crate) fn uses(&self, t: ToolKind) -> bool {
        self.tools.contains(&t)
    }

    /// The per-tool timeout.
    pub(crate) fn tool_timeout(&self) -> Duration {
        Duration::from_secs(self.tool_timeout_s)
    }

    /// The largest P (tls and grouped).
    pub(crate) fn max_p(&self) -> usize {
        self.ps.iter().copied().max().unwrap_or(8)
    }

    /// The smallest N (tls).
    pub(crate) fn min_n(&self) -> usize {
        self.ns.iter().copied().min().unwrap_or(100)
    }
}

/// Splits `LABEL=DIR` (a bare `DIR` is labelled `avocet`).
pub(crate) fn parse_build(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (label, dir) = match spec.split_once('=') {
        Some((l, d)) => (l.trim().to_string(), d.trim()),
        None => ("avocet".to_string(), spec.trim()),
    };
    if label.is_empty() || dir.is_empty() {
        bail!("--avocet {spec:?}: expected LABEL=DIR");
    }
    let dir = std::path::absolute(dir).with_context(|| format!("--avocet {spec:?}"))?;
    Ok((label, dir))
}
