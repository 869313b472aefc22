//! `--output text`: tables and summaries (a rollout's live progress is `progress.rs`).

use std::fmt::Write as _;

use avocet_client::{VersionField, pb};

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

/// A version as the set writes it (`3`, `1.2.3`, `R__views`), `-` for none.
pub(super) fn version(v: &Option<pb::Version>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "-".to_owned(),
    }
}

/// Versions as the set writes them, comma-separated.
fn versions(vs: &[pb::Version]) -> String {
    vs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
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

pub(super) fn tenant_plan(out: &mut String, p: &pb::TenantPlan) {
    tenant_plan_but(out, p, &[]);
}

/// A tenant's plan, less the diagnostics in `shared` (listed once for the fleet).
fn tenant_plan_but(out: &mut String, p: &pb::TenantPlan, shared: &[&pb::Diagnostic]) {
    let state = if p.blocked { "  BLOCKED" } else { "" };
    let _ = writeln!(
        out,
        "{}  at {}  {} step(s){state}",
        p.tenant,
        version(&p.current_version),
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
            s.version.text(),
            s.name,
            s.statements
        );
    }
    let own: Vec<pb::Diagnostic> = p
        .diagnostics
        .iter()
        .filter(|d| !shared.contains(d))
        .cloned()
        .collect();
    diagnostics(out, &own);
}

/// Warnings that more than one tenant's plan gives word for word (a `no_transaction`
/// step, a lint warning): said once, with how many tenants it concerns, rather than once
/// per tenant. Errors stay with their tenant.
fn shared_warnings(tenants: &[pb::TenantPlan]) -> Vec<(&pb::Diagnostic, usize)> {
    let mut shared: Vec<(&pb::Diagnostic, usize)> = Vec::new();
    for p in tenants {
        for d in &p.diagnostics {
            if d.severity == pb::Severity::Error as i32 {
                continue;
            }
            match shared.iter_mut().find(|(s, _)| *s == d) {
                Some((_, n)) => *n += 1,
                None => shared.push((d, 1)),
            }
        }
    }
    shared.retain(|(_, n)| *n > 1);
    shared
}

pub(crate) fn plan(resp: &pb::PlanResponse) {
    let mut out = format!("fleet {}  set digest {}\n", resp.fleet, resp.set_digest);
    let shared = shared_warnings(&resp.tenants);
    let said: Vec<&pb::Diagnostic> = shared.iter().map(|(d, _)| *d).collect();
    for p in &resp.tenants {
        tenant_plan_but(&mut out, p, &said);
    }
    for (d, n) in &shared {
        let _ = writeln!(out, "warning [{}] {} ({n} tenants)", d.code, d.message);
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
            f.kind,
            f.code,
            f.version.text(),
            f.name,
            f.line,
            f.message,
            f.id
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
            version(&t.current_version),
            t.pending
        );
        diagnostics(&mut out, &t.diagnostics);
        if let Some(s) = &t.schema {
            let what = match s.expected {
                true => format!("schema as expected ({})", s.basis),
                false => "schema DRIFTED from the expected one".to_owned(),
            };
            let _ = writeln!(out, "    {what}, fingerprint {}", s.fingerprint);
            for d in &s.diff {
                let _ = writeln!(out, "      {}: {} {}", d.object, d.change, d.detail);
            }
        }
    }
    let bad = resp.tenants.iter().filter(|t| !t.ok).count();
    let _ = writeln!(out, "{} tenant(s), {bad} with problems", resp.tenants.len());
    super::emit(&out);
}

/// The fleet summary; `refreshed`: every tenant was read for it (`--refresh`).
pub(crate) fn status(resp: &pb::StatusResponse, refreshed: bool) {
    let mut out = format!(
        "fleet {}  latest version {}  {} tenant(s): {} up to date, {} pending, {} failed, \
         {} unreachable, {} never read, {} drifted\n",
        resp.fleet,
        version(&resp.latest_version),
        resp.tenant_count,
        resp.up_to_date,
        resp.pending,
        resp.failed,
        resp.unreachable,
        resp.unknown,
        resp.drifted
    );
    if resp.oldest_read_at_unix_ms > 0 && !refreshed {
        let age = chrono_age(resp.oldest_read_at_unix_ms);
        let _ = writeln!(
            out,
            "oldest reading {age} ago (--refresh reads every tenant now)"
        );
    }
    let rows = resp.tenants.iter().map(|t| {
        let failed = versions(&t.failed_versions);
        format!(
            "{}\t{}\t{}\t{failed}\t{}",
            t.tenant,
            version(&t.current_version),
            t.pending,
            t.error
        )
    });
    let header = "TENANT\tVERSION\tPENDING\tFAILED VERSIONS\tERROR".to_owned();
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
            version(&f.latest_version),
            f.format
        ));
        if !f.error.is_empty() {
            super::emit(&format!("{:<16} broken: {}\n", "", f.error));
        }
    }
}

/// `succeeded`, `failed`, … for people.
pub(super) fn state_name(s: pb::RolloutState) -> String {
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
         {} skipped, {} pending; {} migration(s) run\n  started by {} at {}\n",
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
        caller(&r.created_by),
        rfc3339(r.created_at_unix_ms),
    );
    if let Some(at) = r.finished_at_unix_ms {
        let _ = writeln!(out, "  finished at {}", rfc3339(at));
    }
    for a in &r.audit {
        let _ = writeln!(
            out,
            "  {} {} by {}",
            rfc3339(a.at_unix_ms),
            a.method,
            caller(&a.caller)
        );
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

/// Who did something, as the daemon's audit names them (`deployer (peer 10.0.0.7:50122)`),
/// the identity of a daemon without `[auth]` (`anonymous`) said as what it is.
pub(super) fn caller(by: &str) -> String {
    match by.strip_prefix("anonymous") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
            format!("an unauthenticated caller{rest}")
        }
        _ if by.is_empty() => "an unknown caller".to_owned(),
        _ => by.to_owned(),
    }
}

/// `at_unix_ms` as RFC 3339 in UTC with milliseconds (`2026-12-06T23:54:19.435Z`).
pub(crate) fn rfc3339(at_unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_unix_ms).map_or_else(
        || format!("{at_unix_ms} ms after 1970"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
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
        version(&resp.current_version),
        resp.pending_versions.len()
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
            r.version.text(),
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
    if !resp.pending_versions.is_empty() {
        let pending: Vec<String> = resp
            .pending_versions
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(out, "  pending: {}", pending.join(", "));
    }
    super::emit(&out);
}

/// A repair: per tenant, what its record was and is now (`now`), unchanged, or refused.
pub(crate) fn repair(resp: &pb::RepairResponse, now: &str) -> String {
    let mut out = String::new();
    for t in &resp.tenants {
        let v = &resp.version.text();
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
            e if t.has_history => writeln!(out, "{}: left alone: {e}", t.tenant),
            e => writeln!(out, "{}: not baselined: {e}", t.tenant),
        };
    }
    super::emit(&out);
}
