//! What a run measured: one [`Sample`] per tool, case and repetition, and the run's metadata.

use serde::Serialize;
use serde_json::Value;

use crate::{
    stats::PgCounters,
    tools::{avocet::DaemonFigures, child::TimedOut},
};

/// The parameters of a measured case.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct Case {
    /// `postgres`, `mysql` or `sqlite`.
    pub(crate) dialect: String,
    /// Migration set (`light`, `heavy`, `large`).
    pub(crate) set: String,
    /// Tenants.
    pub(crate) n: usize,
    /// Parallelism (tenants or processes at once).
    pub(crate) p: usize,
    /// What was timed for reads (`status`, `status, again`, `plan`, `plan, again`,
    /// `migrate info`); empty otherwise.
    pub(crate) op: String,
    /// Size of the migration set in bytes.
    pub(crate) set_bytes: usize,
    /// Migrations in the set.
    pub(crate) migrations: usize,
}

impl Case {
    /// The row key of a table: what identifies the case apart from the tool.
    pub(crate) fn row(&self) -> String {
        match (self.set.as_str(), self.dialect.as_str()) {
            ("large", d) => format!("{d}, {:.1} MB", self.set_bytes as f64 / 1e6),
            // publish: `dialect` is the control store's (the fleet is PostgreSQL).
            ("published", d) => format!(
                "{d} store, {} migrations, {:.2} MB",
                self.migrations,
                self.set_bytes as f64 / 1e6
            ),
            (s, "postgres") if self.op.is_empty() => format!("{s}, N={}, P={}", self.n, self.p),
            (_, d) => format!("{d}, N={}", self.n),
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    /// Scenario name.
    pub(crate) scenario: String,
    /// Parameters.
    pub(crate) case: Case,
    /// Tool label (`floor`, `sqlx-cli`, or an avocet build's label).
    pub(crate) tool: String,
    /// Whether the tool is an avocet build.
    pub(crate) avocet: bool,
    /// Repetition (0-based).
    pub(crate) rep: u32,
    /// Position of the tool within the repetition (the order alternates).
    pub(crate) position: usize,
    /// Whether the tool succeeded and its result checked out.
    pub(crate) ok: bool,
    /// A failure that is expected for now (TLS, a flag not yet added); does not fail smoke.
    pub(crate) tolerated: bool,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// Set (to the timeout, in seconds) when the tool ran past `--tool-timeout` and was
    /// killed.
    pub(crate) timed_out_after_s: Option<u64>,
    /// Wall time of the timed part, in ms.
    pub(crate) wall_ms: Option<f64>,
    /// wall × P / N, in ms.
    pub(crate) per_tenant_ms: Option<f64>,
    /// `pg_stat_database` deltas summed over the fleet.
    pub(crate) pg: Option<PgCounters>,
    /// `sessions` / N.
    pub(crate) sessions_per_tenant: Option<f64>,
    /// `xact_commit` / (N × migrations).
    pub(crate) commits_per_migration: Option<f64>,
    /// Most server sessions on the fleet's databases at once (sampled every 20 ms).
    pub(crate) peak_connections: Option<i64>,
    /// avocetd's peak RSS and CPU over the timed part.
    pub(crate) daemon: Option<DaemonFigures>,
    /// CPU time of the tool's own processes (psql, sqlx, the avocet CLI), in ms.
    pub(crate) client_cpu_ms: Option<f64>,
    /// Bytes of the backup files written (the backups scenario).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) backup_bytes: Option<u64>,
}

impl Sample {
    /// An empty sample for a case and tool, to fill in.
    pub(crate) fn new(
        scenario: &str,
        case: &Case,
        tool: &crate::tools::Tool,
        rep: u32,
        position: usize,
    ) -> Sample {
        Sample {
            scenario: scenario.to_string(),
            case: case.clone(),
            tool: tool.label(),
            avocet: tool.is_avocet(),
            rep,
            position,
            ok: false,
            tolerated: false,
            error: None,
            timed_out_after_s: None,
            wall_ms: None,
            per_tenant_ms: None,
            pg: None,
            sessions_per_tenant: None,
            commits_per_migration: None,
            peak_connections: None,
            daemon: None,
            client_cpu_ms: None,
            backup_bytes: None,
        }
    }

    /// Marks the sample failed.
    pub(crate) fn fail(&mut self, error: impl Into<String>) {
        self.ok = false;
        self.error = Some(error.into());
    }

    /// Marks the sample failed by a timeout.
    pub(crate) fn time_out(&mut self, t: TimedOut) {
        self.fail(t.to_string());
        self.timed_out_after_s = Some(t.after.as_secs());
    }

    /// One progress line.
    pub(crate) fn line(&self) -> String {
        let what = format!(
            "{:<8} {:<28} rep {} {:<10}",
            self.scenario,
            self.case.row(),
            self.rep + 1,
            self.tool
        );
        let op = format!("{:<14}", self.case.op);
        match (&self.error, self.wall_ms) {
            (None, Some(ms)) => match self.backup_bytes {
                Some(b) => format!("{what} {op}{:>10.3} s, {b} backup bytes", ms / 1000.0),
                None => format!("{what} {op}{:>10.3} s", ms / 1000.0),
            },
            (Some(e), _) => {
                let tag = if self.tolerated {
                    "failed (expected)"
                } else {
                    "FAILED"
                };
                let e: String = e.chars().take(300).collect();
                format!("{what} {op}{tag}: {}", e.replace('\n', " "))
            }
            (None, None) => format!("{what} {op}no figure"),
        }
    }
}

/// Round trips and commits of one tool applying one set to one fresh PostgreSQL tenant
/// (N=1, P=1), once per run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RoundTrips {
    /// Set name.
    pub(crate) set: String,
    /// Tool label.
    pub(crate) tool: String,
    /// Whether the tool is an avocet build.
    pub(crate) avocet: bool,
    /// Migrations in the set.
    pub(crate) migrations: usize,
    /// Successful writes to sockets connected to the server (one request each).
    pub(crate) writes: Option<u64>,
    /// Distinct server connections those writes went to.
    pub(crate) connections: Option<u64>,
    /// `writes` / `migrations`.
    pub(crate) round_trips_per_migration: Option<f64>,
    /// `xact_commit` delta of the tenant.
    pub(crate) commits: Option<i64>,
    /// `commits` / `migrations`.
    pub(crate) commits_per_migration: Option<f64>,
    /// Why the writes could not be counted (no strace, ptrace not permitted, …).
    pub(crate) unavailable: Option<String>,
    /// Why the tool failed (then no figure is kept).
    pub(crate) error: Option<String>,
    /// Set (to the timeout, in seconds) when the tool ran past `--tool-timeout`.
    pub(crate) timed_out_after_s: Option<u64>,
}

impl RoundTrips {
    /// An empty record for a set and tool, to fill in.
    pub(crate) fn new(set: &str, migrations: usize, tool: &crate::tools::Tool) -> RoundTrips {
        RoundTrips {
            set: set.to_string(),
            tool: tool.label(),
            avocet: tool.is_avocet(),
            migrations,
            writes: None,
            connections: None,
            round_trips_per_migration: None,
            commits: None,
            commits_per_migration: None,
            unavailable: None,
            error: None,
            timed_out_after_s: None,
        }
    }

    /// One progress line.
    pub(crate) fn line(&self) -> String {
        let what = format!(
            "{:<8} {:<28} {:<10}",
            "apply",
            format!("{}, N=1, P=1 (traced)", self.set),
            self.tool
        );
        if let Some(e) = &self.error {
            let e: String = e.chars().take(300).collect();
            return format!("{what} FAILED: {}", e.replace('\n', " "));
        }
        let rt = match (self.round_trips_per_migration, &self.unavailable) {
            (Some(r), _) => format!(
                "{r:.2} round trips / migration ({} writes, {} connection(s))",
                self.writes.unwrap_or(0),
                self.connections.unwrap_or(0)
            ),
            (None, Some(why)) => format!("round trips unavailable: {why}"),
            (None, None) => "round trips: no figure".into(),
        };
        let commits = self
            .commits_per_migration
            .map_or_else(|| "–".into(), |c| format!("{c:.2}"));
        format!("{what} {rt}; commits / migration {commits}")
    }
}

/// A scenario that could not run at all (setup failed).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioError {
    /// Scenario name.
    pub(crate) scenario: String,
    /// What went wrong.
    pub(crate) message: String,
}

/// Everything written to `results.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Results {
    /// Identifier of the run (also in database names).
    pub(crate) run_id: String,
    /// Start, RFC 3339.
    pub(crate) started_at: String,
    /// End, RFC 3339.
    pub(crate) finished_at: String,
    /// Whether every selected scenario ran to its end.
    pub(crate) complete: bool,
    /// The command line.
    pub(crate) args: Value,
    /// The resolved plan.
    pub(crate) plan: Value,
    /// Machine and server versions.
    pub(crate) machine: Value,
    /// Tools: avocet builds, sqlx-cli, clients.
    pub(crate) tools: Value,
    /// Every measurement.
    pub(crate) samples: Vec<Sample>,
    /// Round trips per migration of each tool and apply set, on one tenant.
    pub(crate) round_trips: Vec<RoundTrips>,
    /// Scenarios that failed to set up.
    pub(crate) errors: Vec<ScenarioError>,
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    /// Median (mean of the middle two for an even count).
    pub(crate) median: f64,
    /// Minimum.
    pub(crate) min: f64,
    /// Maximum.
    pub(crate) max: f64,
}

/// The spread of some values (`None` when empty).
pub(crate) fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}
