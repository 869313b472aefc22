//! What every scenario needs: the plan, the admin connections, the tools, the scratch
//! directory, and the collected samples.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use crate::{
    cli::{Plan, ToolKind},
    fleets::Admin,
    results::{RoundTrips, Sample, ScenarioError},
    sets::{self, Flavour, MigrationSet},
    stats::Cpu,
    tools::{Build, Tool, strace::Strace},
};

/// Shared state of a run.
pub(crate) struct Ctx {
    /// What to run.
    pub(crate) plan: Plan,
    /// Admin connections and the registry of created databases.
    pub(crate) admin: Admin,
    /// avocet builds (empty when `--tools` leaves avocet out).
    pub(crate) builds: Vec<Build>,
    /// sqlx-cli, when selected and available.
    pub(crate) sqlx: Option<PathBuf>,
    /// CPU readings.
    pub(crate) cpu: Cpu,
    /// The run's scratch directory.
    pub(crate) work: PathBuf,
    /// Extra `avocet apply` arguments from the command line.
    pub(crate) apply_args: Vec<String>,
    /// strace, to count round trips (when it can be used here).
    pub(crate) strace: Strace,
    /// Samples so far.
    pub(crate) samples: Mutex<Vec<Sample>>,
    /// Round-trip figures so far.
    pub(crate) round_trips: Mutex<Vec<RoundTrips>>,
    /// Scenarios that could not run.
    pub(crate) errors: Mutex<Vec<ScenarioError>>,
}

impl Ctx {
    /// The tools of a scenario in their base order: floor (if it has one), sqlx-cli, the
    /// avocet builds.
    pub(crate) fn tools(&self, with_floor: bool) -> Vec<Tool> {
        let mut t = Vec::new();
        if with_floor && self.plan.uses(ToolKind::Floor) {
            t.push(Tool::Floor);
        }
        if let Some(s) = &self.sqlx {
            t.push(Tool::Sqlx(s.clone()));
        }
        t.extend(self.builds.iter().cloned().map(Tool::Avocet));
        t
    }

    /// The tools of repetition `rep`: the base order rotated by `rep`, so each tool takes
    /// each position in turn.
    pub(crate) fn tools_for_rep(&self, with_floor: bool, rep: u32) -> Vec<Tool> {
        self.tools_for_rep_among(with_floor, rep, &self.plan.tools)
    }

    /// [`Ctx::tools_for_rep`] restricted to the families `kinds`.
    pub(crate) fn tools_for_rep_among(
        &self,
        with_floor: bool,
        rep: u32,
        kinds: &[ToolKind],
    ) -> Vec<Tool> {
        let mut t = self.tools(with_floor);
        t.retain(|tool| kinds.contains(&tool.kind()));
        if !t.is_empty() {
            let k = rep as usize % t.len();
            t.rotate_left(k);
        }
        t
    }

    /// Prints and keeps a sample.
    pub(crate) fn record(&self, s: Sample) {
        println!("{}", s.line());
        self.samples.lock().expect("samples").push(s);
    }

    /// Prints and keeps a round-trip figure.
    pub(crate) fn record_round_trips(&self, r: RoundTrips) {
        println!("{}", r.line());
        self.round_trips.lock().expect("round trips").push(r);
    }

    /// Prints and keeps a scenario-level failure.
    pub(crate) fn scenario_error(&self, scenario: &str, e: &anyhow::Error) {
        println!("{scenario}: could not run: {e:#}");
        self.errors.lock().expect("errors").push(ScenarioError {
            scenario: scenario.to_string(),
            message: format!("{e:#}"),
        });
    }

    /// Shortest wait before reading statistics.
    pub(crate) fn settle(&self) -> Duration {
        Duration::from_millis(self.plan.settle_ms)
    }

    /// A scratch subdirectory (created).
    pub(crate) fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.work.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Writes a generated set under `sets/<name>`.
    pub(crate) fn write_set(
        &self,
        name: &str,
        f: impl FnOnce() -> Vec<sets::Migration>,
    ) -> anyhow::Result<MigrationSet> {
        let dir = self.work.join("sets").join(name);
        sets::write(name.split('-').next().unwrap_or(name), f(), &dir)
    }

    /// The light set for a flavour.
    pub(crate) fn light(&self, f: Flavour) -> anyhow::Result<MigrationSet> {
        let name = match f {
            Flavour::Postgres => "light-pg",
            Flavour::Sqlite => "light-sqlite",
        };
        self.write_set(name, || sets::light(f))
    }

    /// Writes a text file under the scratch directory.
    pub(crate) fn write_file(&self, rel: &str, text: &str) -> anyhow::Result<PathBuf> {
        let p = self.work.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        Ok(p)
    }
}

/// Removes a directory tree, printing (not returning) a failure.
pub(crate) fn remove_dir(dir: &Path) {
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        eprintln!("warning: cannot remove {}: {e}", dir.display());
    }
}
