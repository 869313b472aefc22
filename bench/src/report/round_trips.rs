//! The round-trip figures: two cells of the apply details table, and a short table of the
//! raw counts with the reasons a figure is missing.

use std::fmt::Write as _;

use super::tables::opt;
use crate::results::RoundTrips;

/// The `round trips / migration` and `commits / migration (1 tenant)` cells of a set and
/// tool: the figure, `n/a` (strace unavailable), `> N s` (timed out), `failed`, or `–`.
pub(super) fn round_trip_cells(rts: &[RoundTrips], set: &str, tool: &str) -> (String, String) {
    let Some(r) = rts.iter().find(|r| r.set == set && r.tool == tool) else {
        return ("–".into(), "–".into());
    };
    if let Some(t) = r.timed_out_after_s {
        let cell = format!("> {t} s");
        return (cell.clone(), cell);
    }
    if r.error.is_some() {
        return ("failed".into(), "failed".into());
    }
    let rt = match (r.round_trips_per_migration, &r.unavailable) {
        (Some(v), _) => format!("{v:.2}"),
        (None, Some(_)) => "n/a".into(),
        (None, None) => "–".into(),
    };
    (rt, opt(r.commits_per_migration, 2))
}

fn one_line(s: &str) -> String {
    let s: String = s.chars().take(300).collect();
    s.replace(['\n', '|'], " ")
}

/// The round-trip section of the apply scenario (empty without figures).
pub(super) fn section(rts: &[RoundTrips]) -> String {
    if rts.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "Round trips (one fresh tenant per set and tool, N=1, P=1, once per run): writes to \
         sockets connected to the PostgreSQL server, counted with strace, including connecting \
         (TLS negotiation, startup, authentication) and, for psql and sqlx-cli, the Terminate \
         message at exit; avocetd is traced during the apply only. Commits are the tenant's \
         `xact_commit` delta.\n\n\
         | set | tool | migrations | writes | connections | round trips / migration | commits | commits / migration |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut notes = Vec::new();
    for r in rts {
        let num = |v: Option<u64>| v.map_or_else(|| "–".into(), |v| v.to_string());
        let (rt, cpm) = round_trip_cells(rts, &r.set, &r.tool);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {rt} | {} | {cpm} |",
            r.set,
            r.tool,
            r.migrations,
            num(r.writes),
            num(r.connections),
            r.commits.map_or_else(|| "–".into(), |c| c.to_string()),
        );
        if let Some(e) = &r.error {
            notes.push(format!("- {} / {}: {}", r.set, r.tool, one_line(e)));
        } else if let Some(why) = &r.unavailable {
            notes.push(format!(
                "- {} / {}: round trips unavailable: {}",
                r.set,
                r.tool,
                one_line(why)
            ));
        }
    }
    md.push('\n');
    if !notes.is_empty() {
        md.push_str(&notes.join("\n"));
        md.push_str("\n\n");
    }
    md
}
