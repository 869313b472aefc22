//! A worker pool of child processes, like `xargs -P`: P workers, each running the next job
//! until none is left.

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{io::AsyncReadExt as _, task::JoinSet};

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
    /// Jobs that failed to start or exited non-zero.
    pub(crate) failed: usize,
    /// The first failure: exit status and the end of stderr.
    pub(crate) first_error: Option<String>,
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

async fn run_one(job: Job) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&job.program);
    cmd.args(&job.args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match &job.stdin {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.stdin(Stdio::from(file));
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let name = job.program.display().to_string();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = child.wait().await.map_err(|e| format!("{name}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} exited with {status}: {}",
            tail(&stderr, 800)
        ))
    }
}

/// Runs `jobs` with at most `p` at once; never returns early, so every child is waited for.
pub(crate) async fn run(jobs: Vec<Job>, p: usize, cpu: &Cpu) -> PoolResult {
    let workers = p.max(1).min(jobs.len().max(1));
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let cpu_before = cpu.children_ms();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let queue = queue.clone();
        set.spawn(async move {
            let mut errors = Vec::new();
            loop {
                let next = queue.lock().expect("job queue").pop_front();
                let Some(job) = next else { break };
                if let Err(e) = run_one(job).await {
                    errors.push(e);
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
    PoolResult {
        wall: start.elapsed(),
        failed,
        first_error,
        cpu_ms: cpu.children_ms() - cpu_before,
    }
}
