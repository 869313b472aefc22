//! Server-side and process figures: `pg_stat_database` sums over a fleet, a sampler of
//! `pg_stat_activity`, and `/proc` readings (CPU time, peak RSS).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::oneshot;

/// Sums of `pg_stat_database` counters over a set of databases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PgCounters {
    /// Sessions established.
    pub(crate) sessions: i64,
    /// Transactions committed.
    pub(crate) xact_commit: i64,
    /// Transactions rolled back.
    pub(crate) xact_rollback: i64,
}

impl PgCounters {
    /// `self - before`.
    pub(crate) fn since(self, before: PgCounters) -> PgCounters {
        PgCounters {
            sessions: self.sessions - before.sessions,
            xact_commit: self.xact_commit - before.xact_commit,
            xact_rollback: self.xact_rollback - before.xact_rollback,
        }
    }
}

/// Reads the counters of `names`, after discarding this session's statistics snapshot.
pub(crate) async fn pg_counters(pool: &PgPool, names: &[String]) -> anyhow::Result<PgCounters> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let (sessions, xact_commit, xact_rollback): (i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(sessions), 0)::bigint, coalesce(sum(xact_commit), 0)::bigint, \
         coalesce(sum(xact_rollback), 0)::bigint FROM pg_stat_database WHERE datname = ANY($1)",
    )
    .bind(names)
    .fetch_one(&mut *conn)
    .await
    .context("reading pg_stat_database")?;
    Ok(PgCounters {
        sessions,
        xact_commit,
        xact_rollback,
    })
}

/// Server sessions on databases matching a `LIKE` pattern.
pub(crate) async fn pg_sessions(pool: &PgPool, like: &str) -> anyhow::Result<i64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE $1")
        .bind(like)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// Waits until the fleet's sessions have ended (their statistics are flushed at exit), at
/// least `min_wait`, then until two readings 250 ms apart agree (at most 5 s), and returns
/// the counters.
pub(crate) async fn settled_counters(
    pool: &PgPool,
    names: &[String],
    like: &str,
    min_wait: Duration,
) -> anyhow::Result<PgCounters> {
    let start = Instant::now();
    while pg_sessions(pool, like).await? > 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest = min_wait.saturating_sub(start.elapsed());
    tokio::time::sleep(rest.max(Duration::from_millis(100))).await;
    let mut last = pg_counters(pool, names).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = pg_counters(pool, names).await?;
        if now == last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// Polls the session count of a `LIKE` pattern every 20 ms and keeps the peak.
pub(crate) struct Sampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<i64>,
}

impl Sampler {
    /// Starts polling on a connection of `pool`.
    pub(crate) fn start(pool: PgPool, like: String) -> Sampler {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let Ok(mut conn) = pool.acquire().await else {
                return -1;
            };
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return peak,
                    _ = tick.tick() => {}
                }
                let n: Result<i64, _> = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE $1",
                )
                .bind(&like)
                .fetch_one(&mut *conn)
                .await;
                if let Ok(n) = n {
                    peak = peak.max(n);
                }
            }
        });
        Sampler { stop, task }
    }

    /// Stops polling; the peak, or `None` if the sampler had no connection.
    pub(crate) async fn stop(self) -> Option<i64> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(n) if n >= 0 => Some(n),
            _ => None,
        }
    }
}

fn clock_ticks() -> f64 {
    // USER_HZ: what /proc reports times in; 100 on Linux unless getconf says otherwise.
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 is index 0).
fn stat_fields(pid: &str) -> anyhow::Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = text.rsplit_once(')').context("malformed /proc stat")?.1;
    Ok(rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// Process CPU readings in milliseconds.
pub(crate) struct Cpu {
    ticks: f64,
}

impl Cpu {
    /// Reads the clock-tick rate once.
    pub(crate) fn new() -> Cpu {
        Cpu {
            ticks: clock_ticks(),
        }
    }

    /// utime + stime of a process.
    pub(crate) fn process_ms(&self, pid: u32) -> anyhow::Result<f64> {
        let f = stat_fields(&pid.to_string())?;
        // utime and stime are fields 14 and 15: indexes 11 and 12 here.
        Ok((f[11] + f[12]) as f64 * 1000.0 / self.ticks)
    }

    /// cutime + cstime of this process: CPU of every child it has waited for.
    pub(crate) fn children_ms(&self) -> f64 {
        stat_fields("self")
            .map(|f| (f[13] + f[14]) as f64 * 1000.0 / self.ticks)
            .unwrap_or(0.0)
    }
}

/// VmHWM (peak resident set) of a process, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc status")
}
