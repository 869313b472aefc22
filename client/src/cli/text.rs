//! `--output text`: a live progress bar per rollout, a line per tenant, tables.

use std::fmt::Write as _;

use avocet_client::pb::{self, rollout_event::Kind};
use indicatif::{ProgressBar, ProgressStyle};

/// `rows` as a table: cells separated by tabs in, columns padded to their widest cell (two
/// spaces apart, widths in terminal columns) out, so an 18-digit version or a long name
/// never pushes a row out of line (tabwriter's elastic tabstops). Each row ends in `\n`.
fn table<I, R>(rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: AsRef<str>,
{
    use std::io::Write as _;
    let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(2);
    for row in rows {
        // Writing to memory cannot fail.
        let _ = writeln!(tw, "{}", row.as_ref());
    }
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A version's `_text` field, `-` for none.
fn version(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn diagnostics(out: &mut String, ds: &[pb::Diagnostic]) {
    for d in ds {
        let tag = if d.severity == pb::Severity::Error as i32 {
            "error"
        } else {
            "warning"
        };
        let _ = writeln!(out, "    {tag} [{}] {}", d.code, d.message);
    }
}

fn tenant_plan(out: &mut String, p: &pb::TenantPlan) {
    let state = if p.blocked { "  BLOCKED" } else { "" };
    let _ = writeln!(
        out,
        "{}  at {}  {} step(s){state}",
        p.tenant,
        version(&p.current_version_text),
        p.steps.len()
    );
    for s in &p.steps {
        let dir = if s.direction == pb::Direction::Down as i32 {
            "down"
        } else {
            "up"
        };
        let tx = if s.transactional {
            ""
        } else {
            "  (no transaction)"
        };
        let _ = writeln!(
            out,
            "    {dir:4} {:>6} {}  {} statement(s){tx}",
            s.version_text, s.name, s.statements
        );
    }
    diagnostics(out, &p.diagnostics);
}

pub(crate) fn plan(resp: &pb::PlanResponse) {
    let mut out = format!("fleet {}  set digest {}\n", resp.fleet, resp.set_digest);
    for p in &resp.tenants {
        tenant_plan(&mut out, p);
    }
    if !resp.waves.is_empty() {
        let _ = writeln!(out, "waves:");
    }
    for w in &resp.waves {
        let name = match w.canary {
            true => "canary".to_owned(),
            false => format!("wave {}", w.index),
        };
        let _ = writeln!(
            out,
            "  {name}: {} tenant(s), {} to {}",
            w.tenant_count, w.first_tenant, w.last_tenant
        );
    }
    for w in &resp.set_warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if !resp.findings.is_empty() {
        let _ = writeln!(out, "lint:");
    }
    for f in &resp.findings {
        let allowed = match f.allowed && f.kind == "destructive" {
            true => " (allowed by the file)",
            false => "",
        };
        let _ = writeln!(
            out,
            "  {} {} version {} ({}) line {}: {}{allowed} [{}]",
            f.kind, f.code, f.version_text, f.name, f.line, f.message, f.id
        );
    }
    super::emit(&out);
}

pub(crate) fn verify(resp: &pb::VerifyResponse) {
    let mut out = format!("fleet {}\n", resp.fleet);
    for t in &resp.tenants {
        let state = if t.ok { "ok" } else { "PROBLEMS" };
        let _ = writeln!(
            out,
            "{}  {state}  at {}  {} pending",
            t.tenant,
            version(&t.current_version_text),
            t.pending
        );
        diagnostics(&mut out, &t.diagnostics);
    }
    let bad = resp.tenants.iter().filter(|t| !t.ok).count();
    let _ = writeln!(out, "{} tenant(s), {bad} with problems", resp.tenants.len());
    super::emit(&out);
}

pub(crate) fn status(resp: &pb::StatusResponse) {
    let mut out = format!(
        "fleet {}  latest version {}  {} tenant(s): {} up to date, {} pending, {} failed, \
         {} unreachable, {} never read\n",
        resp.fleet,
        version(&resp.latest_version_text),
        resp.tenant_count,
        resp.up_to_date,
        resp.pending,
        resp.failed,
        resp.unreachable,
        resp.unknown
    );
    if resp.oldest_read_at_unix_ms > 0 {
        let age = chrono_age(resp.oldest_read_at_unix_ms);
        let _ = writeln!(
            out,
            "oldest reading {age} ago (--refresh reads every tenant now)"
        );
    }
    let rows = resp.tenants.iter().map(|t| {
        format!(
            "{}\t{}\t{}\t{}{}",
            t.tenant,
            version(&t.current_version_text),
            t.pending,
            t.failed_versions_text.join(","),
            t.error
        )
    });
    let header = "TENANT\tVERSION\tPENDING\tFAILED".to_owned();
    out.push_str(&table(std::iter::once(header).chain(rows)));
    super::emit(&out);
}

/// A tenant's last-known state as `ListTenants` classified it: `up to date`, `3 pending`,
/// `failed, 1 pending`, `never read, 16 pending`, `unreachable`; `-` when not told.
fn tenant_state(t: &pb::TenantInfo) -> String {
    match (t.state.as_str(), t.pending) {
        ("", _) => "-".to_owned(),
        ("pending", n) => format!("{n} pending"),
        (state, 0) => state.to_owned(),
        (state, n) => format!("{state}, {n} pending"),
    }
}

pub(crate) fn tenants(resp: &pb::ListTenantsResponse) {
    let mut rows = Vec::with_capacity(resp.tenants.len());
    for t in &resp.tenants {
        let mut labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let schema = if t.schema.is_empty() {
            String::new()
        } else {
            format!("  schema={}", t.schema)
        };
        let source = match t.source.as_str() {
            "api" => "  (registered)",
            _ => "",
        };
        rows.push(format!(
            "{}\t{}\t{}{schema}{source}",
            t.id,
            tenant_state(t),
            labels.join(",")
        ));
    }
    super::emit(&table(rows));
}

pub(crate) fn fleets(fleets: &[pb::FleetInfo]) {
    for f in fleets {
        super::emit(&format!(
            "{:<16} {:<9} {} tenant(s)  {} migration(s), latest {}  ({} layout)\n",
            f.name,
            f.dialect,
            f.tenant_count,
            f.migration_count,
            version(&f.latest_version_text),
            f.format
        ));
        if !f.error.is_empty() {
            super::emit(&format!("{:<16} broken: {}\n", "", f.error));
        }
    }
}

/// Renders a rollout's events: a bar over tenants, one line per finished tenant.
#[derive(Default)]
pub(crate) struct RolloutView {
    bar: Option<ProgressBar>,
    /// The rollout is a dry run: its end is a plan's verdict, not a run's.
    dry_run: bool,
}

impl RolloutView {
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
                    bar.set_message(format!("{}: {} {}", m.tenant, m.version_text, m.name));
                }
            }
            Some(Kind::TenantFinished(t)) => {
                self.println(tenant_line(t));
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
                self.println(format!("rollout {} by {}", state_name(state), c.by));
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
                    version(&r.version_text),
                    r.statement,
                    r.attempt,
                    r.wait_ms
                ));
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
            version(&t.current_version_text)
        ),
        pb::TenantOutcome::Planned => format!("  planned {}", t.tenant),
        pb::TenantOutcome::Skipped => format!("  skipped {}", t.tenant),
        _ => format!(
            "  FAILED  {:<20} after {} migration(s), at {}",
            t.tenant,
            t.migrations_run,
            version(&t.current_version_text)
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

/// `succeeded`, `failed`, … for people.
fn state_name(s: pb::RolloutState) -> String {
    s.as_str_name()
        .trim_start_matches("ROLLOUT_STATE_")
        .to_ascii_lowercase()
}

/// What a rollout does: `apply`, `rollback`, with ` (dry run)` for a dry run, which
/// planned and changed nothing.
fn operation(r: &pb::Rollout) -> String {
    let op = if r.direction == pb::Direction::Down as i32 {
        "rollback"
    } else {
        "apply"
    };
    match r.dry_run {
        true => format!("{op} (dry run)"),
        false => op.to_owned(),
    }
}

pub(crate) fn rollout(r: &pb::Rollout) {
    let state = pb::RolloutState::try_from(r.state).unwrap_or_default();
    let mut out = format!(
        "rollout {}  fleet {}  {}  {}\n  {} tenant(s) in {} wave(s): {} succeeded, {} failed, \
         {} skipped, {} pending; {} migration(s) run\n  started by {} at {} ms\n",
        r.id,
        r.fleet,
        operation(r),
        state_name(state),
        r.tenant_count,
        r.waves,
        r.succeeded,
        r.failed,
        r.skipped,
        r.pending,
        r.migrations_run,
        r.created_by,
        r.created_at_unix_ms,
    );
    for a in &r.audit {
        let _ = writeln!(out, "  {} {} by {}", a.at_unix_ms, a.method, a.caller);
    }
    super::emit(&out);
}

pub(crate) fn rollouts(rs: &[pb::Rollout]) {
    let rows = rs.iter().map(|r| {
        let state = pb::RolloutState::try_from(r.state).unwrap_or_default();
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.fleet,
            operation(r),
            state_name(state),
            r.tenant_count,
            r.failed,
            r.pending
        )
    });
    let header = "ROLLOUT\tFLEET\tOPERATION\tSTATE\tTENANTS\tFAILED\tPENDING".to_owned();
    super::emit(&table(std::iter::once(header).chain(rows)));
}

/// How long ago `at_unix_ms` was, for people: `42 s`, `3 min`, `5 h`.
fn chrono_age(at_unix_ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let s = (now - at_unix_ms).max(0) / 1000;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// One tenant's history: a line per record, then what is pending.
pub(crate) fn history(resp: &pb::HistoryResponse) {
    let mut out = format!(
        "tenant {}  at {}  {} pending\n",
        resp.tenant,
        version(&resp.current_version_text),
        resp.pending_versions_text.len()
    );
    let mut rows = Vec::with_capacity(resp.records.len());
    for r in &resp.records {
        let mut notes = Vec::new();
        if r.drift {
            notes.push("DRIFT: the file changed since it ran".to_owned());
        }
        if r.down_drift {
            notes.push("down script changed since it was recorded".to_owned());
        }
        if r.missing {
            notes.push("MISSING: no file in the set".to_owned());
        }
        if !r.error.is_empty() {
            notes.push(format!("error: {}", r.error));
        }
        rows.push(format!(
            "  {}\t{}\t{}\tbatch {}\t{}/{} statements\t{}\t{}",
            r.version_text,
            r.name,
            r.status,
            r.batch,
            r.statements_done,
            r.statements_total,
            &r.checksum[..r.checksum.len().min(12)],
            notes.join("; ")
        ));
    }
    out.push_str(&table(rows));
    if !resp.pending_versions_text.is_empty() {
        let pending = &resp.pending_versions_text;
        let _ = writeln!(out, "  pending: {}", pending.join(", "));
    }
    super::emit(&out);
}

/// A repair: per tenant, what its record was and is now (`now`), unchanged, or refused.
pub(crate) fn repair(resp: &pb::RepairResponse, now: &str) -> String {
    let mut out = String::new();
    for t in &resp.tenants {
        let v = &resp.version_text;
        let _ = match (t.error.as_str(), t.changed) {
            ("", true) => writeln!(
                out,
                "tenant {}: version {v} was {}, now {now}",
                t.tenant, t.previous_status
            ),
            ("", false) if t.previous_status == "none" => writeln!(
                out,
                "tenant {}: version {v} has no record: nothing to change",
                t.tenant
            ),
            ("", false) => writeln!(
                out,
                "tenant {}: version {v} is already {}: nothing to change",
                t.tenant, t.previous_status
            ),
            (error, _) => writeln!(out, "tenant {}: refused: {error}", t.tenant),
        };
    }
    out
}

/// A baseline: per tenant, how many versions were recorded, or why none were.
pub(crate) fn baseline(resp: &pb::BaselineResponse) {
    let mut out = String::new();
    for t in &resp.tenants {
        let _ = match t.error.as_str() {
            "" => writeln!(
                out,
                "{}: {} version(s) recorded as applied",
                t.tenant, t.baselined
            ),
            e => writeln!(out, "{}: not baselined: {e}", t.tenant),
        };
    }
    super::emit(&out);
}
