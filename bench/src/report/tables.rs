//! The Markdown tables: rows are cases, columns are tools (and, for reads, operations).

use std::fmt::Write as _;

use super::round_trips::round_trip_cells;
use crate::results::{RoundTrips, Sample, spread};

/// A duration for a table cell: ms below a second, else seconds.
fn fmt_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 100_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{:.0} s", ms / 1000.0)
    }
}

/// Values of ok samples.
fn values(samples: &[&Sample], f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.ok)
        .filter_map(|s| f(s))
        .collect()
}

fn median(samples: &[&Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    spread(values(samples, f)).map(|s| s.median)
}

/// A table's rows and columns in order of first appearance; columns are tool (+ op).
pub(super) struct Grid<'a> {
    /// Row keys.
    pub(super) rows: Vec<String>,
    cols: Vec<String>,
    /// avocet build labels, in order of first appearance.
    builds: Vec<String>,
    cells: Vec<(String, String, Vec<&'a Sample>)>,
}

/// The column of a sample: its tool, and its operation when it has one.
pub(super) fn col_of(s: &Sample) -> String {
    if s.case.op.is_empty() {
        s.tool.clone()
    } else {
        format!("{}: {}", s.tool, s.case.op)
    }
}

/// The samples of one scenario, arranged by row and column.
pub(super) fn grid<'a>(samples: &'a [Sample], scenario: &str) -> Grid<'a> {
    let mut g = Grid {
        rows: Vec::new(),
        cols: Vec::new(),
        builds: Vec::new(),
        cells: Vec::new(),
    };
    for s in samples.iter().filter(|s| s.scenario == scenario) {
        let (row, col) = (s.case.row(), col_of(s));
        if !g.rows.contains(&row) {
            g.rows.push(row.clone());
        }
        if s.avocet && !g.builds.contains(&s.tool) {
            g.builds.push(s.tool.clone());
        }
        if !g.cols.contains(&col) {
            g.cols.push(col.clone());
        }
        match g.cells.iter_mut().find(|(r, c, _)| *r == row && *c == col) {
            Some((_, _, v)) => v.push(s),
            None => g.cells.push((row, col, vec![s])),
        }
    }
    g
}

impl Grid<'_> {
    fn get(&self, row: &str, col: &str) -> &[&Sample] {
        self.cells
            .iter()
            .find(|(r, c, _)| r == row && c == col)
            .map(|(_, _, v)| v.as_slice())
            .unwrap_or_default()
    }

    /// (column of a later avocet build, the same column of the first build), to compare
    /// builds.
    fn build_pairs(&self) -> Vec<(String, String)> {
        let Some(first) = self.builds.first() else {
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for b in self.builds.iter().skip(1) {
            for c in &self.cols {
                let prefix = format!("{b}: ");
                let base = if c == b {
                    first.clone()
                } else if let Some(op) = c.strip_prefix(&prefix) {
                    format!("{first}: {op}")
                } else {
                    continue;
                };
                if self.cols.contains(&base) {
                    pairs.push((c.clone(), base));
                }
            }
        }
        pairs
    }

    /// The sqlx-cli column of a row, if any.
    fn sqlx(&self, row: &str) -> Option<f64> {
        let col = self.cols.iter().find(|c| c.starts_with("sqlx-cli"))?;
        median(self.get(row, col), |s| s.wall_ms)
    }
}

/// `> N s` when a sample of the cell timed out (the longest timeout of them).
fn timeout_text(samples: &[&Sample]) -> Option<String> {
    samples
        .iter()
        .filter(|s| !s.ok)
        .filter_map(|s| s.timed_out_after_s)
        .max()
        .map(|t| format!("> {t} s"))
}

/// What failed in a cell: timeouts (`> N s`) and other failures, each with its count unless
/// every sample of the cell is one.
fn status_note(samples: &[&Sample]) -> Option<String> {
    let total = samples.len();
    let timed = samples
        .iter()
        .filter(|s| !s.ok && s.timed_out_after_s.is_some())
        .count();
    let other: Vec<&&Sample> = samples
        .iter()
        .filter(|s| !s.ok && s.timed_out_after_s.is_none())
        .collect();
    let counted = |k: usize, what: String| {
        if k == total {
            what
        } else {
            format!("{k}/{total} {what}")
        }
    };
    let mut parts = Vec::new();
    if let Some(t) = timeout_text(samples) {
        parts.push(counted(timed, t));
    }
    if !other.is_empty() {
        let expected = other.iter().all(|s| s.tolerated);
        let what = if expected {
            "failed (expected)"
        } else {
            "failed"
        };
        parts.push(counted(other.len(), what.to_string()));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Wall-time table: median, and the ratio to sqlx-cli in the same row.
pub(super) fn wall_table(g: &Grid<'_>, first: &str, floor_name: &str) -> String {
    let mut t = format!("| {first} |");
    for c in &g.cols {
        let name = if c == "floor" { floor_name } else { c.as_str() };
        let _ = write!(t, " {name} |");
    }
    let pairs = g.build_pairs();
    for (later, base) in &pairs {
        let header = match (later.split_once(": "), base.split_once(": ")) {
            (Some((l, op)), Some((b, _))) => format!("{op}: {l} ÷ {b}"),
            _ => format!("{later} ÷ {base}"),
        };
        let _ = write!(t, " {header} |");
    }
    t.push_str("\n|---|");
    t.push_str(&"---:|".repeat(g.cols.len() + pairs.len()));
    t.push('\n');
    for row in &g.rows {
        let _ = write!(t, "| {row} |");
        let base = g.sqlx(row);
        for c in &g.cols {
            let cell = g.get(row, c);
            let mut text = match median(cell, |s| s.wall_ms) {
                Some(ms) => match base {
                    Some(b) if !c.starts_with("sqlx-cli") && b > 0.0 => {
                        format!("{} ({:.2}×)", fmt_ms(ms), ms / b)
                    }
                    _ => fmt_ms(ms),
                },
                None => String::new(),
            };
            if let Some(note) = status_note(cell) {
                text = if text.is_empty() {
                    note
                } else {
                    format!("{text}, {note}")
                };
            }
            let _ = write!(t, " {text} |");
        }
        for (later, base) in &pairs {
            let l = median(g.get(row, later), |s| s.wall_ms);
            let b = median(g.get(row, base), |s| s.wall_ms);
            let text = match (l, b) {
                (Some(l), Some(b)) if b > 0.0 => format!("{:.2}×", l / b),
                _ => "–".into(),
            };
            let _ = write!(t, " {text} |");
        }
        t.push('\n');
    }
    t
}

pub(super) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// Per-tool details: spread of wall time and the other figures (medians over ok reps); with
/// `round_trips`, each set and tool's round trips and commits per migration on one tenant.
pub(super) fn detail_table(
    g: &Grid<'_>,
    with_pg: bool,
    floor_name: &str,
    round_trips: Option<&[RoundTrips]>,
) -> String {
    let mut t = String::from("| case | tool | wall min–max | ok reps |");
    if with_pg {
        t.push_str(" per tenant | sessions / tenant | commits / migration | peak connections |");
    }
    if round_trips.is_some() {
        t.push_str(" round trips / migration | commits / migration (1 tenant) |");
    }
    t.push_str(" avocetd peak RSS | avocetd CPU | client CPU |\n|---|---|---:|---:|");
    if with_pg {
        t.push_str("---:|---:|---:|---:|");
    }
    if round_trips.is_some() {
        t.push_str("---:|---:|");
    }
    t.push_str("---:|---:|---:|\n");
    for row in &g.rows {
        for c in &g.cols {
            let cell = g.get(row, c);
            if cell.is_empty() {
                continue;
            }
            let range = spread(values(cell, |s| s.wall_ms))
                .map(|s| format!("{} – {}", fmt_ms(s.min), fmt_ms(s.max)))
                .or_else(|| timeout_text(cell))
                .unwrap_or_else(|| "–".into());
            let ok = cell.iter().filter(|s| s.ok).count();
            let name = if c == "floor" { floor_name } else { c.as_str() };
            let _ = write!(t, "| {row} | {name} | {range} | {ok}/{} |", cell.len());
            if with_pg {
                let _ = write!(
                    t,
                    " {} | {} | {} | {} |",
                    median(cell, |s| s.per_tenant_ms)
                        .map(fmt_ms)
                        .unwrap_or_else(|| "–".into()),
                    opt(median(cell, |s| s.sessions_per_tenant), 2),
                    opt(median(cell, |s| s.commits_per_migration), 2),
                    opt(median(cell, |s| s.peak_connections.map(|p| p as f64)), 0),
                );
            }
            if let Some(rts) = round_trips {
                let (rt, commits) = round_trip_cells(rts, &cell[0].case.set, &cell[0].tool);
                let _ = write!(t, " {rt} | {commits} |");
            }
            let rss = median(cell, |s| s.daemon.map(|d| d.peak_rss_kib as f64 / 1024.0));
            let _ = writeln!(
                t,
                " {} | {} | {} |",
                rss.map(|m| format!("{m:.1} MiB"))
                    .unwrap_or_else(|| "–".into()),
                median(cell, |s| s.daemon.map(|d| d.cpu_ms))
                    .map(fmt_ms)
                    .unwrap_or_else(|| "–".into()),
                median(cell, |s| s.client_cpu_ms)
                    .map(fmt_ms)
                    .unwrap_or_else(|| "–".into()),
            );
        }
    }
    t
}
