//! Counting the requests a tool sends to the PostgreSQL server: the tool runs under `strace`
//! (psql and sqlx-cli wrapped, avocetd attached with `-p` for one apply), and the writes to
//! sockets connected to the server's address are counted. `-yy` prints each descriptor's
//! connection (`3<TCP:[127.0.0.1:40000->127.0.0.1:5432]>`), so only writes whose remote end
//! is the server count, and a write that failed (`= -1 EAGAIN`) does not.

use std::{
    collections::{BTreeSet, HashMap},
    net::{SocketAddr, ToSocketAddrs as _},
    path::Path,
    process::Stdio,
    time::Duration,
};

use tokio::time::Instant;

use super::{
    child::{self, GroupGuard},
    pool::{Job, tail},
};

/// The system calls traced: every way a client writes to a socket.
const SYSCALLS: [&str; 4] = ["sendto", "sendmsg", "write", "writev"];

/// strace, if it can be used here, and the server's addresses as strace prints them.
pub(crate) struct Strace {
    unavailable: Option<String>,
    targets: Vec<String>,
}

/// What a trace shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Successful writes to sockets connected to the server.
    pub(crate) writes: u64,
    /// Distinct such sockets.
    pub(crate) connections: u64,
    /// Writes to sockets strace could not decode (`socket:[inode]`).
    pub(crate) undecoded: u64,
}

/// `host` and `port` of a `postgres://user:password@host:port/…` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, port) = v6.split_once(']')?;
        let port = port
            .strip_prefix(':')
            .map_or(Some(5432), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((hostport.to_string(), 5432)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// strace's spelling of an address: `127.0.0.1:5432`, `[::1]:5432`.
fn spelled(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// strace's arguments before the command or `-p PID`.
fn args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["-f", "-qq", "-yy", "-e"].map(String::from).to_vec();
    a.push(format!("trace={}", SYSCALLS.join(",")));
    a.extend(["-e", "signal=none", "-o"].map(String::from));
    a.push(out.display().to_string());
    a
}

impl Strace {
    /// Checks that strace runs and can trace a child here, and resolves the server's address
    /// from `pg_url`.
    pub(crate) fn new(pg_url: &str) -> Strace {
        let targets: Vec<String> = host_port(pg_url)
            .and_then(|hp| hp.to_socket_addrs().ok())
            .map(|addrs| addrs.map(spelled).collect())
            .unwrap_or_default();
        let unavailable = if targets.is_empty() {
            Some(format!("cannot tell the TCP address of {pg_url}"))
        } else {
            match std::process::Command::new("strace")
                .args(["-f", "-qq", "-o", "/dev/null", "--", "true"])
                .stdin(Stdio::null())
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some("strace is not installed (not on PATH)".into())
                }
                Err(e) => Some(format!("strace cannot be started ({e})")),
                Ok(o) if !o.status.success() => Some(format!(
                    "strace cannot trace here ({}): {}",
                    o.status,
                    tail(&String::from_utf8_lossy(&o.stderr), 300)
                )),
                Ok(_) => None,
            }
        };
        Strace {
            unavailable,
            targets,
        }
    }

    /// Why strace cannot be used, when it cannot.
    pub(crate) fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The job run under strace, writing its trace to `out`.
    pub(crate) fn wrap(&self, job: &Job, out: &Path) -> Job {
        let mut a = args(out);
        a.push("--".into());
        a.push(job.program.display().to_string());
        a.extend(job.args.iter().cloned());
        Job {
            program: "strace".into(),
            args: a,
            stdin: job.stdin.clone(),
        }
    }

    /// Attaches strace to every thread of `pid` (and the threads it starts), tracing to
    /// `out`; returns once every thread is traced. The error is why it could not attach.
    pub(crate) async fn attach(&self, pid: u32, out: &Path) -> Result<Attached, String> {
        if let Some(why) = &self.unavailable {
            return Err(why.clone());
        }
        let mut cmd = tokio::process::Command::new("strace");
        cmd.args(args(out))
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut strace = child::grouped(&mut cmd)
            .spawn()
            .map_err(|e| format!("strace cannot be started ({e})"))?;
        let tracer = strace.id().ok_or("strace has no pid")?;
        let guard = GroupGuard::new(Some(tracer));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = strace.try_wait() {
                let out = strace.wait_with_output().await.ok();
                let err = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                return Err(format!(
                    "strace -p {pid} exited with {status}: {}",
                    tail(&err.unwrap_or_default(), 300)
                ));
            }
            if traced_by(pid, tracer) {
                return Ok(Attached {
                    strace,
                    tracer,
                    guard,
                });
            }
            if Instant::now() > deadline {
                return Err(format!("strace -p {pid} did not attach within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Counts the trace in `out`, then removes the file.
    pub(crate) fn count_file(&self, out: &Path) -> Result<Counts, String> {
        let text = std::fs::read_to_string(out);
        let _ = std::fs::remove_file(out);
        let text = text.map_err(|e| format!("reading the trace {}: {e}", out.display()))?;
        let c = count(&text, &self.targets);
        if c.writes == 0 && c.undecoded > 0 {
            return Err(format!(
                "strace could not decode the sockets ({} writes to undecoded sockets)",
                c.undecoded
            ));
        }
        Ok(c)
    }
}

/// Whether every thread of `pid` has `tracer` as its tracer.
fn traced_by(pid: u32, tracer: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let ours = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .is_some_and(|t| t.trim() == tracer.to_string());
        if !ours {
            return false;
        }
        any = true;
    }
    any
}

/// A strace attached to a running process; killed (which detaches it) when dropped.
pub(crate) struct Attached {
    strace: tokio::process::Child,
    tracer: u32,
    guard: GroupGuard,
}

impl Attached {
    /// Detaches (SIGINT: strace detaches from every thread and writes out its trace) and
    /// waits for strace to exit.
    pub(crate) async fn detach(mut self) -> Result<(), String> {
        child::signal(self.tracer, "INT", false);
        match tokio::time::timeout(Duration::from_secs(10), self.strace.wait()).await {
            Ok(_) => {
                self.guard.disarm();
                Ok(())
            }
            Err(_) => {
                self.guard.kill();
                let _ = self.strace.wait().await;
                Err("strace did not detach within 10 s".into())
            }
        }
    }
}

/// The result of a complete or resumed line is a positive byte count.
fn wrote(line: &str) -> bool {
    line.rsplit_once(" = ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// What a traced write goes to: `Some(Ok(connection))` for a socket connected to one of
/// `targets`, `Some(Err(()))` for an undecoded socket, `None` for anything else.
fn socket<'a>(args: &'a str, targets: &[String]) -> Option<Result<&'a str, ()>> {
    let deco = args.trim_start_matches(|c: char| c.is_ascii_digit());
    let deco = deco.strip_prefix('<')?;
    if deco.starts_with("socket:[") {
        return Some(Err(()));
    }
    let inner = deco
        .strip_prefix("TCP:[")
        .or_else(|| deco.strip_prefix("TCPv6:["))?;
    let inner = &inner[..inner.find("]>")?];
    let (_, remote) = inner.split_once("->")?;
    targets.iter().any(|t| t == remote).then_some(Ok(inner))
}

/// Adds one successful write to the counts.
fn tally<'a>(to: Option<Result<&'a str, ()>>, c: &mut Counts, sockets: &mut BTreeSet<&'a str>) {
    match to {
        Some(Ok(conn)) => {
            c.writes += 1;
            sockets.insert(conn);
        }
        Some(Err(())) => c.undecoded += 1,
        None => {}
    }
}

/// Counts the successful writes to the server in a trace written with [`args`]: lines are
/// `PID name(fd<decoration>, …) = result`, or split in two by another thread (`… <unfinished
/// ...>`, then `PID <... name resumed>…) = result`).
pub(crate) fn count(text: &str, targets: &[String]) -> Counts {
    let mut c = Counts::default();
    let mut sockets = BTreeSet::new();
    // Unfinished writes by pid: the socket each went to.
    let mut pending: HashMap<&str, Option<Result<&str, ()>>> = HashMap::new();
    for line in text.lines() {
        let (pid, rest) = match line.split_once(' ') {
            Some((p, r)) if p.bytes().all(|b| b.is_ascii_digit()) => (p, r.trim_start()),
            _ => ("", line),
        };
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, _)) = resumed.split_once(" resumed>") else {
                continue;
            };
            if SYSCALLS.contains(&name)
                && let Some(to) = pending.remove(pid)
                && wrote(resumed)
            {
                tally(to, &mut c, &mut sockets);
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        if !SYSCALLS.contains(&name) {
            continue;
        }
        let to = socket(args, targets);
        if args.ends_with("<unfinished ...>") {
            pending.insert(pid, to);
        } else if wrote(args) {
            tally(to, &mut c, &mut sockets);
        }
    }
    c.connections = sockets.len() as u64;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "127.0.0.1:5432";

    #[test]
    fn counts_only_successful_writes_to_the_server() {
        let trace = "\
10 sendto(3<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, \"\\0\\0\", 8, MSG_NOSIGNAL, NULL, 0) = 8
10 write(1</tmp/out>, \"->127.0.0.1:5432]>\", 9) = 9
11 sendto(7<TCP:[127.0.0.1:40001->127.0.0.1:5432]>, \"Q\", 40, MSG_NOSIGNAL, NULL, 0 <unfinished ...>
10 sendto(3<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, \"Q\", 40, MSG_NOSIGNAL, NULL, 0) = -1 EAGAIN (Resource temporarily unavailable)
12 writev(9<TCP:[127.0.0.1:7000->127.0.0.1:51000]>, [{iov_base=\"x\", iov_len=1}], 1) = 1
11 <... sendto resumed>) = 40
13 writev(4<TCP:[127.0.0.1:40002->127.0.0.1:54321]>, [{iov_base=\"x\", iov_len=1}], 1) = 1
14 sendmsg(5<TCPv6:[[::1]:40003->[::1]:5432]>, {msg_name=NULL}, 0) = 12
";
        let c = count(trace, &[PG.into(), "[::1]:5432".into()]);
        assert_eq!(
            c,
            Counts {
                writes: 3,
                connections: 3,
                undecoded: 0
            }
        );
    }

    #[test]
    fn a_failed_resumed_write_and_undecoded_sockets() {
        let trace = "\
20 write(5<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, \"X\", 5 <unfinished ...>
21 sendto(6<socket:[12345]>, \"Q\", 4, 0, NULL, 0) = 4
20 <... write resumed>) = -1 EPIPE (Broken pipe)
";
        let c = count(trace, &[PG.into()]);
        assert_eq!((c.writes, c.connections, c.undecoded), (0, 0, 1));
    }

    #[tokio::test]
    async fn attaching_to_no_process_is_an_error_not_a_panic() {
        let s = Strace::new("postgres://postgres@127.0.0.1:5432");
        let out = std::env::temp_dir().join(format!("avb-attach-{}.trace", std::process::id()));
        // Pid 2^22 + 1 is above Linux's largest pid: no such process.
        let r = s.attach((1 << 22) + 1, &out).await;
        let _ = std::fs::remove_file(&out);
        assert!(r.is_err());
    }

    #[test]
    fn server_address_from_the_url() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432"),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(
            host_port("postgres://u:p@w@db.local/x?sslmode=require"),
            Some(("db.local".into(), 5432))
        );
        assert_eq!(
            host_port("postgresql://[::1]:6543/db"),
            Some(("::1".into(), 6543))
        );
        assert_eq!(host_port("postgres:///db"), None);
    }
}
