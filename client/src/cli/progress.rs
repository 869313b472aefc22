//! `--output text` of a running rollout: a live progress bar over its tenants, one line per
//! finished tenant, and its verdict at the end.

use std::fmt::Write as _;

use avocet_client::{
    VersionField,
    pb::{self, rollout_event::Kind},
};
use indicatif::{ProgressBar, ProgressStyle};

use super::text::{caller, state_name, tenant_plan, version};

/// Renders a rollout's events: a bar over tenants, one line per finished tenant.
#[derive(Default)]
pub(crate) struct RolloutView {
    bar: Option<ProgressBar>,
    /// The rollout is a dry run: its end is a plan's verdict, not a run's.
    dry_run: bool,
    /// The version an apply was asked to reach (`--to`): a tenant already past it is told
    /// so, since apply never goes down.
    target: Option<String>,
}

impl RolloutView {
    /// A view of a rollout that applies up to `target` (`None`: the latest, or a rollback).
    pub(crate) fn to(target: Option<String>) -> Self {
        Self {
            target,
            ..Self::default()
        }
    }

    /// A note for a tenant that ran nothing because it is already past `--to`.
    fn past_target(&self, t: &pb::TenantFinished) -> Option<String> {
        let target = self.target.as_deref()?;
        let at = t.current_version.text();
        let above = crate::cli::version_above(&at, target);
        (t.migrations_run == 0 && above).then(|| {
            format!(
                "          already past version {target} (at {at}): apply never goes down; \
                 `avocet rollback --to {target}` does"
            )
        })
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => super::emit(&format!("{line}\n")),
        }
    }

    pub(crate) fn show(&mut self, event: &pb::RolloutEvent) {
        match &event.kind {
            Some(Kind::RolloutStarted(s)) => {
                let what = if s.direction == pb::Direction::Down as i32 {
                    "rollback"
                } else {
                    "apply"
                };
                self.dry_run = s.dry_run;
                let dry = if s.dry_run { " (dry run)" } else { "" };
                super::emit(&format!(
                    "{what}{dry} on fleet {}: {} tenant(s), {} at a time  [rollout {}]\n",
                    s.fleet, s.tenant_count, s.concurrency, event.rollout_id
                ));
                let bar = ProgressBar::new(u64::from(s.tenant_count));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{bar:30}] {pos}/{len} tenants  {elapsed}  {msg}",
                    )
                    // A constant template; should it ever not parse, a plain bar.
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                self.bar = Some(bar);
            }
            Some(Kind::MigrationStarted(m)) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{}: {} {}", m.tenant, m.version.text(), m.name));
                }
            }
            Some(Kind::TenantFinished(t)) => {
                self.println(tenant_line(t));
                if let Some(note) = self.past_target(t) {
                    self.println(note);
                }
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Some(Kind::RolloutFinished(f)) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let state = pb::RolloutState::try_from(f.state).unwrap_or_default();
                if self.dry_run {
                    // A dry run is a plan: it says whether the real run would be refused.
                    let verdict = match f.failed {
                        0 => "nothing blocked",
                        _ => "blocked",
                    };
                    super::emit(&format!(
                        "dry run: {verdict}: {} tenant(s) would run, {} would be refused, {} \
                         skipped; nothing was changed\n",
                        f.succeeded, f.failed, f.skipped
                    ));
                    return;
                }
                super::emit(&format!(
                    "{} in {} ms: {} succeeded, {} failed, {} skipped, {} migration(s) run\n",
                    state_name(state),
                    f.duration_ms,
                    f.succeeded,
                    f.failed,
                    f.skipped,
                    f.migrations_run
                ));
                if !f.reason.is_empty() {
                    super::emit(&format!("why: {}\n", f.reason));
                }
                if matches!(state, pb::RolloutState::Interrupted) {
                    super::emit(&format!(
                        "the daemon stopped before the rollout finished. A tenant it cut off \
                         mid-migration may need `avocet repair` first (the resume names \
                         them): repair, then resume: avocet rollouts resume {}\n",
                        event.rollout_id
                    ));
                }
            }
            Some(Kind::WaveStarted(w)) => {
                let canary = if w.canary { " (canary)" } else { "" };
                self.println(format!(
                    "wave {}{canary}: {} tenant(s)",
                    w.index, w.tenant_count
                ));
            }
            Some(Kind::StateChanged(c)) => {
                let state = pb::RolloutState::try_from(c.state).unwrap_or_default();
                // A change to running is a resume (a rollout starts with RolloutStarted).
                let what = match state {
                    pb::RolloutState::Running => "resumed".to_owned(),
                    other => state_name(other),
                };
                let by = caller(&c.by);
                let why = match c.reason.is_empty() {
                    true => String::new(),
                    false => format!(": {}", c.reason),
                };
                self.println(format!("rollout {what} by {by}{why}"));
            }
            Some(Kind::BackupTaken(b)) => {
                self.println(format!(
                    "  backup  {:<20} before version {}: {} ({} bytes, {} ms)",
                    b.tenant,
                    b.before_version.text(),
                    b.backup_id,
                    b.bytes,
                    b.duration_ms
                ));
            }
            Some(Kind::LockRetry(r)) => {
                let holders = match r.holders.is_empty() {
                    true => String::new(),
                    false => format!("; held by {}", r.holders),
                };
                let note = match r.note.is_empty() {
                    true => String::new(),
                    false => format!("; {}", r.note),
                };
                self.println(format!(
                    "  waiting {:<20} version {} statement {} gave up on a lock; retry {} in {} ms{holders}{note}",
                    r.tenant,
                    version(&r.version),
                    r.statement,
                    r.attempt,
                    r.wait_ms
                ));
            }
            Some(Kind::SchemaDrift(d)) => {
                let mut line = format!(
                    "  warning {:<20} schema differs from version {}'s expected one (set by {})",
                    d.tenant,
                    match d.version.text() {
                        v if v.is_empty() => "none".to_owned(),
                        v => v,
                    },
                    d.expected_from
                );
                for c in &d.diff {
                    line.push_str(&format!("\n      {}: {}", c.object, c.change));
                }
                self.println(line);
            }
            _ => {}
        }
    }
}

fn tenant_line(t: &pb::TenantFinished) -> String {
    let outcome = pb::TenantOutcome::try_from(t.outcome).unwrap_or_default();
    let mut line = match outcome {
        pb::TenantOutcome::Succeeded => format!(
            "  ok      {:<20} {} migration(s) in {} ms, now at {}",
            t.tenant,
            t.migrations_run,
            t.duration_ms,
            version(&t.current_version)
        ),
        pb::TenantOutcome::Planned => format!("  planned {}", t.tenant),
        pb::TenantOutcome::Skipped => format!("  skipped {}", t.tenant),
        _ => format!(
            "  FAILED  {:<20} after {} migration(s), at {}",
            t.tenant,
            t.migrations_run,
            version(&t.current_version)
        ),
    };
    if let Some(e) = &t.error {
        let _ = write!(line, "\n          [{}] {}", e.code, e.message);
    }
    if let Some(p) = &t.plan {
        let mut plan = String::new();
        tenant_plan(&mut plan, p);
        for l in plan.lines() {
            let _ = write!(line, "\n          {l}");
        }
    }
    line
}
