//! Issue 25, finding 11: reading a large migration file takes memory in proportion to the
//! file, a small multiple of it, not tens of bytes of tokens per byte of text.
//!
//! The figure is the process's peak resident set (`VmHWM` in `/proc/self/status`, reset
//! through `/proc/self/clear_refs`, proc(5)) while one script is read, as an operator would
//! see it; this binary holds this one test, so nothing else runs beside it.

use avocet_daemon::{DialectKind, parse_script};

/// A field of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`; the kernel writes kB).
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

/// A script of about `bytes` bytes of small `INSERT`s, with strings, comments and a
/// placeholder-looking text in a string, as a data migration would have.
fn inserts(bytes: usize) -> String {
    let mut sql = String::with_capacity(bytes + 200);
    let mut i = 0u64;
    while sql.len() < bytes {
        sql.push_str(&format!(
            "INSERT INTO events (id, kind, note) VALUES ({i}, 'signup', 'row {i}; see ${{x}}'); -- {i}\n"
        ));
        i += 1;
    }
    sql
}

/// Peak resident bytes above the resident set before `f`, while `f` runs.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak (proc(5), clear_refs)");
    let before = status_bytes("VmRSS:");
    let out = f();
    (out, status_bytes("VmHWM:").saturating_sub(before))
}

const MIB: usize = 1024 * 1024;

/// Reads the 16 MiB script in `dialect` and prints the peak as `peak BYTES`.
fn measure(dialect: DialectKind) {
    let sql = inserts(16 * MIB);
    let (script, peak) = peak_of(|| parse_script(&sql, dialect).expect("the script reads"));
    let statements = script.statements().count();
    assert!(statements > 150_000, "{statements} statements");
    println!("{} {statements} {peak}", sql.len());
}

/// Each dialect is measured in a process of its own (this binary, run again with the
/// dialect as its argument), so memory the allocator kept from one reading does not hide
/// the next one's peak.
fn main() {
    let dialects = [
        ("postgres", DialectKind::Postgres),
        ("mysql", DialectKind::Mysql),
        ("sqlite", DialectKind::Sqlite),
    ];
    if let Some(name) = std::env::args().nth(1).filter(|a| !a.starts_with('-')) {
        let (_, dialect) = dialects
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a dialect: postgres, mysql or sqlite");
        measure(*dialect);
        return;
    }
    let me = std::env::current_exe().expect("this test's path");
    for (name, _) in dialects {
        let out = std::process::Command::new(&me)
            .arg(name)
            .output()
            .expect("run the measurement");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let figures: Vec<usize> = text
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let [bytes, statements, peak] = figures[..] else {
            panic!("{name}: unexpected output {text:?}");
        };
        let ratio = peak as f64 / bytes as f64;
        eprintln!(
            "{name}: {bytes} bytes, {statements} statements, peak resident set +{peak} bytes \
             ({ratio:.1}x)"
        );
        // The script keeps its normalised text (1x) and one span per statement; reading it
        // may add a copy or two of the text and a bounded window of tokens.
        assert!(
            ratio < 6.0,
            "{name}: reading {bytes} bytes raised the peak resident set by {peak} bytes \
             ({ratio:.1}x)"
        );
    }
    println!("script_memory: ok");
}
