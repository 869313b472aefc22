//! One child process in a process group of its own, with its output collected and a
//! deadline: past it the whole group is killed and the child reaped, so a timeout leaves no
//! process behind. A dropped run (Ctrl-C) kills the group too.

use std::{fmt, process::ExitStatus, process::Stdio, time::Duration};

use tokio::{io::AsyncReadExt as _, process::Command, time::Instant};

/// A tool that ran past the per-tool timeout (`--tool-timeout`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedOut {
    /// The timeout.
    pub(crate) after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {} s", self.after.as_secs())
    }
}

impl std::error::Error for TimedOut {}

/// The timeout behind an error, if it is one.
pub(crate) fn timed_out(e: &anyhow::Error) -> Option<TimedOut> {
    e.downcast_ref::<TimedOut>().copied()
}

/// Sends `signal` (`KILL`, `INT`, `TERM`) to a process group, or to one process when
/// `group` is false. Failures (the group is gone) are ignored.
pub(crate) fn signal(pid: u32, signal: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills a process group when dropped, unless disarmed.
pub(crate) struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    /// Guards the group led by `pgid`.
    pub(crate) fn new(pgid: Option<u32>) -> GroupGuard {
        GroupGuard { pgid }
    }

    /// Kills the group now (once).
    pub(crate) fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal(pgid, "KILL", true);
        }
    }

    /// The group ended by itself: nothing to kill.
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a child ended.
pub(crate) struct Output {
    /// Exit status.
    pub(crate) status: ExitStatus,
    /// Standard output (empty unless captured).
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Makes a command lead a process group of its own (killed with its child when dropped).
pub(crate) fn grouped(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0).kill_on_drop(true)
}

/// Spawns `cmd` (stdin as configured; stdout captured when `capture_stdout`, else
/// discarded; stderr captured) in a process group of its own and waits for it until
/// `deadline`; past it, kills the group and returns `Err(TimedOut)` with the timeout
/// `after` as its figure.
pub(crate) async fn run(
    mut cmd: Command,
    capture_stdout: bool,
    deadline: Instant,
    after: Duration,
) -> anyhow::Result<Output> {
    grouped(&mut cmd)
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut guard = GroupGuard::new(child.id());
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let finished = tokio::time::timeout_at(deadline, async {
        let read_out = async {
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut stdout).await;
            }
        };
        let read_err = async {
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut stderr).await;
            }
        };
        let ((), ()) = tokio::join!(read_out, read_err);
        child.wait().await
    })
    .await;
    match finished {
        Ok(status) => {
            let status = status?;
            guard.disarm();
            Ok(Output {
                status,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        }
        Err(_) => {
            guard.kill();
            let _ = child.wait().await;
            Err(TimedOut { after }.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pids of processes whose command line contains `marker`.
    fn with_marker(marker: &str) -> Vec<u32> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        // A shell that leaves a grandchild behind unless its group is killed.
        let marker = format!("31.{}", std::process::id());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("sleep {marker} & sleep {marker}; wait")]);
        let after = Duration::from_millis(300);
        let r = run(cmd, true, Instant::now() + after, after).await;
        let e = r.err().expect("timed out");
        assert_eq!(timed_out(&e).map(|t| t.after), Some(after));
        assert_eq!(e.to_string(), "timed out after 0 s");
        // Killed children are reaped by their parent (sh, itself killed) or by init.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !with_marker(&marker).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            with_marker(&marker).is_empty(),
            "a sleep survived the timeout"
        );
    }

    #[tokio::test]
    async fn output_of_a_quick_child() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let after = Duration::from_secs(30);
        let out = run(cmd, true, Instant::now() + after, after)
            .await
            .expect("ran");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!((out.stdout.trim(), out.stderr.trim()), ("out", "err"));
    }
}
