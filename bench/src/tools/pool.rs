//! A worker pool of child processes, like `xargs -P`: P workers, each running the next job
//! until none is left, every child in a process group of its own, under a deadline.

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{task::JoinSet, time::Instant};

use super::child;
use crate::stats::Cpu;

/// One child process to run.
pub(crate) struct Job {
    /// Executable.
    pub(crate) program: PathBuf,
    /// Arguments.
    pub(crate) args: Vec<String>,
    /// File fed to standard input (otherwise none).
    pub(crate) stdin: Option<PathBuf>,
}

/// What a pool run did.
pub(crate) struct PoolResult {
    /// From the first spawn to the last exit.
    pub(crate) wall: Duration,
    /// Jobs that failed to start, exited non-zero, were killed at the deadline or never
    /// started because of it.
    pub(crate) failed: usize,
    /// The first failure: exit status and the end of stderr.
    pub(crate) first_error: Option<String>,
    /// Set when the run went past its timeout (its children were killed).
    pub(crate) timed_out: Option<child::TimedOut>,
    /// CPU time of the children (user + system), in ms.
    pub(crate) cpu_ms: f64,
}

/// Keeps the last `max` characters of a text (on a char boundary).
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Why a job failed.
enum Failure {
    /// It ran past the deadline and was killed.
    TimedOut,
    /// It could not start, or exited non-zero: what it said.
    Failed(String),
}

async fn run_one(job: Job, deadline: Instant, after: Duration) -> Result<(), Failure> {
    let mut cmd = tokio::process::Command::new(&job.program);
    cmd.args(&job.args);
    match &job.stdin {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
            cmd.stdin(Stdio::from(file));
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let name = job.program.display().to_string();
    let out =
        child::run(cmd, false, deadline, after)
            .await
            .map_err(|e| match child::timed_out(&e) {
                Some(_) => Failure::TimedOut,
                None => Failure::Failed(format!("cannot run {name}: {e:#}")),
            })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "{name} exited with {}: {}",
            out.status,
            tail(&out.stderr, 800)
        )))
    }
}

/// Runs `jobs` with at most `p` at once; never returns early, so every child is waited for.
/// Past `timeout` (from the start) the running children are killed, no further job starts,
/// and the result says it timed out.
pub(crate) async fn run(jobs: Vec<Job>, p: usize, cpu: &Cpu, timeout: Duration) -> PoolResult {
    let workers = p.max(1).min(jobs.len().max(1));
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let cpu_before = cpu.children_ms();
    let start = Instant::now();
    let deadline = start + timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let queue = queue.clone();
        let expired = expired.clone();
        set.spawn(async move {
            let mut errors = Vec::new();
            loop {
                let next = queue.lock().expect("job queue").pop_front();
                let Some(job) = next else { break };
                if Instant::now() >= deadline {
                    // Left in the queue: counted as failed below.
                    queue.lock().expect("job queue").push_front(job);
                    expired.store(true, Ordering::Relaxed);
                    break;
                }
                match run_one(job, deadline, timeout).await {
                    Ok(()) => {}
                    Err(Failure::TimedOut) => {
                        expired.store(true, Ordering::Relaxed);
                        errors.push(child::TimedOut { after: timeout }.to_string());
                        break;
                    }
                    Err(Failure::Failed(e)) => errors.push(e),
                }
            }
            errors
        });
    }
    let mut failed = 0;
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        let errors = r.unwrap_or_else(|e| vec![format!("worker panicked: {e}")]);
        failed += errors.len();
        if first_error.is_none() {
            first_error = errors.into_iter().next();
        }
    }
    let left = queue.lock().expect("job queue").len();
    let timed_out = expired
        .load(Ordering::Relaxed)
        .then_some(child::TimedOut { after: timeout });
    PoolResult {
        wall: start.elapsed(),
        // Jobs never started (past the deadline) failed too.
        failed: failed + left,
        first_error,
        timed_out,
        cpu_ms: cpu.children_ms() - cpu_before,
    }
}

impl PoolResult {
    /// The failure of a run over `n` tenants, if any: the timeout, or how many failed and
    /// the first error.
    pub(crate) fn error(&self, n: usize) -> Option<String> {
        if let Some(t) = self.timed_out {
            return Some(t.to_string());
        }
        self.first_error
            .as_ref()
            .map(|e| format!("{} of {n} tenants failed; first: {e}", self.failed))
    }
}
