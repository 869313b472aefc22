//! `results.json`, `results.md` (one table per scenario, a column per tool, ratios against
//! sqlx-cli) and `benchmarks.md` (the hand-written header plus the tables).

mod round_trips;
mod tables;

use std::{fmt::Write as _, path::Path};

use anyhow::Context;

use tables::{col_of, detail_table, grid, wall_table};

use crate::results::{Results, Sample};

/// The hand-written part of docs/benchmarks.md.
const HEADER: &str = include_str!("../benchmarks_header.md");

/// Writes `bench/results.json`, `bench/results.md`, `bench/apply.png` and `benchmarks.md`
/// under `out`.
pub(crate) fn write_all(out: &Path, r: &Results) -> anyhow::Result<()> {
    let bench = out.join("bench");
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    std::fs::write(
        bench.join("results.json"),
        serde_json::to_string_pretty(r)? + "\n",
    )?;
    let charted = crate::chart::apply_chart(&r.samples, &bench.join("apply.png"))?;
    let md = markdown(r, charted);
    std::fs::write(bench.join("results.md"), &md)?;
    std::fs::write(out.join("benchmarks.md"), format!("{HEADER}\n{md}"))?;
    Ok(())
}

const SECTIONS: [(&str, &str, &str, &str, bool); 11] = [
    (
        "apply",
        "Apply: fresh PostgreSQL fleets",
        "set, fleet, parallelism",
        "floor (psql)",
        true,
    ),
    (
        "grouped",
        "Grouped: one transaction per tenant",
        "set, fleet, parallelism",
        "floor (psql -1)",
        true,
    ),
    (
        "tls",
        "TLS: `sslmode=require`",
        "set, fleet, parallelism",
        "floor (psql)",
        true,
    ),
    (
        "reads",
        "Reads: status and plan",
        "dialect, fleet",
        "floor (connect + read)",
        false,
    ),
    (
        "one-more",
        "One more: +1 migration on every tenant of a migrated fleet",
        "dialect, fleet",
        "floor (psql)",
        true,
    ),
    (
        "schemas",
        "Schemas: N schema tenants of one PostgreSQL database",
        "dialect, fleet",
        "floor (psql)",
        true,
    ),
    (
        "known",
        "Status from last-known state",
        "dialect, fleet",
        "floor",
        false,
    ),
    (
        "backups",
        "Backups: a destructive migration on the heavy set, `when = \"destructive\"` against `\"never\"`",
        "dialect, fleet",
        "floor",
        false,
    ),
    (
        "census",
        "Census: every tenant's schema fingerprinted; apply with census_on_apply on and off",
        "dialect, fleet",
        "floor",
        false,
    ),
    (
        "publish",
        "Publish: a set published through the API, then its first plan (control store per row)",
        "control store, set",
        "floor",
        false,
    ),
    (
        "large",
        "Large: one big migration, one tenant",
        "dialect, size",
        "native client",
        false,
    ),
];

/// The Markdown tables of a run.
pub(crate) fn markdown(r: &Results, charted: bool) -> String {
    let mut md = String::from("## Results\n\n");
    let _ = writeln!(
        md,
        "Run `{}`, {} to {}{}.\n",
        r.run_id,
        r.started_at,
        r.finished_at,
        if r.complete {
            ""
        } else {
            " (interrupted: partial)"
        }
    );
    let _ = writeln!(md, "- Machine: {}", crate::machine::summary(&r.machine));
    for b in r.tools["avocet"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "- avocet build `{}`: `{}`, commit {}",
            b["label"].as_str().unwrap_or("?"),
            b["dir"].as_str().unwrap_or("?"),
            b["commit"]
                .as_str()
                .map(|c| format!("`{c}`"))
                .unwrap_or_else(|| "unknown".into())
        );
    }
    let _ = writeln!(
        md,
        "- sqlx-cli: {}",
        r.tools["sqlx_cli_version"]
            .as_str()
            .unwrap_or("not measured")
    );
    let _ = writeln!(
        md,
        "- Repetitions: {}; cells are medians, ratios are against sqlx-cli in the same row (below 1 is faster).\n",
        r.plan["reps"]
    );
    if charted {
        md.push_str("![apply wall times](bench/apply.png)\n\n");
    }
    for (key, title, first, floor, with_pg) in SECTIONS {
        let g = grid(&r.samples, key);
        if g.rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "### {title}\n\nWall time (median):\n\n{}",
            wall_table(&g, first, floor)
        );
        let rts = (key == "apply" && !r.round_trips.is_empty()).then_some(&r.round_trips[..]);
        let _ = writeln!(
            md,
            "Details (medians over successful repetitions):\n\n{}",
            detail_table(&g, with_pg, floor, rts)
        );
        if let Some(rts) = rts {
            md.push_str(&round_trips::section(rts));
        }
        if key == "backups" {
            md.push_str(&backup_bytes(&r.samples));
        }
    }
    let failures: Vec<&Sample> = r.samples.iter().filter(|s| !s.ok).collect();
    if !failures.is_empty() || !r.errors.is_empty() {
        md.push_str("### Failures\n\n");
        for e in &r.errors {
            let _ = writeln!(
                md,
                "- **{}** could not run: {}",
                e.scenario,
                one_line(&e.message)
            );
        }
        for s in failures {
            let tag = if s.tolerated {
                " (expected for now)"
            } else {
                ""
            };
            let _ = writeln!(
                md,
                "- {} / {} / {} / rep {}{tag}: {}",
                s.scenario,
                s.case.row(),
                col_of(s),
                s.rep + 1,
                one_line(s.error.as_deref().unwrap_or(""))
            );
        }
        md.push('\n');
    }
    md
}

/// The bytes of backup files each successful backups sample wrote, one line per sample.
fn backup_bytes(samples: &[Sample]) -> String {
    let mut md = String::from("Backup files written:\n\n");
    for s in samples.iter().filter(|s| s.scenario == "backups" && s.ok) {
        let _ = writeln!(
            md,
            "- {} / {} / rep {}: {} bytes",
            s.case.row(),
            col_of(s),
            s.rep + 1,
            s.backup_bytes.unwrap_or(0)
        );
    }
    md.push('\n');
    md
}

fn one_line(s: &str) -> String {
    let s: String = s.chars().take(400).collect();
    s.replace(['\n', '|'], " ")
}
