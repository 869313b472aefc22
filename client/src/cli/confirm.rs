//! Asking before a change reaches tenants, with one way to accept risk.
//!
//! - `--accept-data-loss` (or the file's `-- avocet:allow-destructive`) says a migration's
//!   data loss is intended; it is the only acceptance, for `apply` and `rollback` alike.
//! - On a terminal, a plan that destroys data lists what it destroys and asks the caller to
//!   type the fleet's name: that answer is the acceptance. Anything else declines (exit 1).
//! - Without a terminal, a plan that destroys data without acceptance is refused before
//!   anything starts, naming `--accept-data-loss`.
//! - `--yes` only skips the plain question asked before a change to more than one tenant.
//! - When nothing will be asked (`--yes`, or no terminal), the set alone is asked first
//!   (`PlanRequest.set_only`, no tenant read); tenants are planned only when one of its
//!   migrations could block.
//!
//! A dry run asks nothing: it is a plan.

use std::io::{BufRead, IsTerminal, Write};

use avocet_client::{Client, RolloutRecord, VersionField, pb};

/// Tenants whose plans the summary reads (one page); the totals cover every tenant.
const SUMMARY_TENANTS: u32 = 100;

/// True when both stdin and stderr are terminals: someone can answer.
pub(super) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Reads one answer to `prompt` from stdin, trimmed.
fn answer(prompt: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr().lock();
    write!(err, "{prompt} ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_owned())
}

/// Asks `question` on stderr; true for `y` or `yes`.
pub(super) fn ask(question: &str) -> anyhow::Result<bool> {
    let answer = answer(&format!("{question} [y/N]"))?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// What the caller decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go ahead as asked.
    Go,
    /// Go ahead: the caller typed the fleet's name, accepting the listed data loss.
    Accepted,
    /// Do not start (exit 1); the reason was printed.
    Declined,
}

/// Asks for the acceptance of `destructive` (lines naming what is destroyed) on fleet
/// `fleet`: on a terminal, by typing the fleet's name; without one, it is refused, naming
/// the flag of `command`.
fn accept(fleet: &str, command: &str, destructive: &[String]) -> anyhow::Result<Decision> {
    let mut text = String::from("these steps destroy data:\n");
    for line in destructive {
        text += &format!("  DESTRUCTIVE: {line}\n");
    }
    eprint!("{text}");
    if !interactive() {
        eprintln!(
            "not started: if this data loss is intended, pass --accept-data-loss \
             (avocet {command} --accept-data-loss), or mark each file \
             `-- avocet:allow-destructive`"
        );
        return Ok(Decision::Declined);
    }
    let typed = answer(&format!(
        "To accept this data loss and {command}, type the fleet's name ({fleet}):"
    ))?;
    if typed == fleet {
        return Ok(Decision::Accepted);
    }
    eprintln!("not started: the answer was not {fleet:?}");
    Ok(Decision::Declined)
}

/// Whether apply `req` goes ahead. A dry run always does. A plan that destroys data without
/// acceptance needs it ([`accept`]); otherwise, on a terminal and on more than one tenant,
/// the plan summary and a question, unless `yes`.
///
/// # Errors
/// When the daemon does not answer the plan, or the answer cannot be read.
pub(crate) async fn apply(
    client: &mut Client,
    req: &pb::ApplyRequest,
    yes: bool,
) -> anyhow::Result<Decision> {
    if req.dry_run {
        return Ok(Decision::Go);
    }
    let tty = interactive();
    let request = pb::PlanRequest {
        fleet: req.fleet.clone(),
        selector: req.selector.clone(),
        target_version: req.target_version.clone(),
        allow_out_of_order: req.allow_out_of_order,
        accept_data_loss: req.accept_data_loss,
        strategy: req.strategy.clone(),
        set: req.set.clone(),
        page_size: SUMMARY_TENANTS,
        ..Default::default()
    };
    // Nothing will be asked: when no migration of the set could block, no tenant needs
    // reading first (an everyday rollout opens each tenant's session once, not twice).
    if !tty || yes {
        let set = client
            .plan(pb::PlanRequest {
                set_only: true,
                ..request.clone()
            })
            .await?;
        if unaccepted(&set, req.accept_data_loss).is_empty() {
            return Ok(Decision::Go);
        }
    }
    let plan = client.plan(request).await?;
    let unaccepted = unaccepted(&plan, req.accept_data_loss);
    if !unaccepted.is_empty() {
        if tty {
            eprint!("{}", summary(&plan));
        }
        return accept(&plan.fleet, "apply", &unaccepted);
    }
    if !tty || yes || plan.tenant_count <= 1 {
        return Ok(Decision::Go);
    }
    eprint!("{}", summary(&plan));
    let go = ask(&format!(
        "Apply to {} tenants of fleet {}?",
        plan.tenant_count, plan.fleet
    ))?;
    Ok(if go { Decision::Go } else { Decision::Declined })
}

/// The findings of `plan` that block without acceptance, one line each.
fn unaccepted(plan: &pb::PlanResponse, accept_data_loss: bool) -> Vec<String> {
    plan.findings
        .iter()
        .filter(|f| f.blocks && !f.allowed && !accept_data_loss)
        .map(|f| {
            format!(
                "version {} ({}) line {}: {}: {}",
                f.version.text(),
                f.name,
                f.line,
                f.code,
                f.message
            )
        })
        .collect()
}

/// Whether a rollback of `what` goes ahead. A dry run always does. On a terminal, the
/// rollback is first planned (a dry run: each tenant's steps, read now); `down` scripts that
/// destroy data without acceptance need it ([`accept`]), and on more than one tenant a
/// question follows, unless `yes`. Without a terminal nothing is asked: the daemon refuses
/// each tenant whose `down` destroys data without acceptance, naming `--accept-data-loss`.
///
/// # Errors
/// When the daemon does not answer, or the answer cannot be read.
pub(crate) async fn rollback(
    client: &mut Client,
    req: &pb::RollbackRequest,
    what: &str,
    yes: bool,
) -> anyhow::Result<Decision> {
    if req.dry_run || !interactive() {
        return Ok(Decision::Go);
    }
    let planned = RolloutRecord::collect(
        client
            .rollback(pb::RollbackRequest {
                dry_run: true,
                ..req.clone()
            })
            .await?,
    )
    .await?;
    let mut tenants = 0;
    let mut unaccepted: Vec<String> = Vec::new();
    for t in planned.tenants() {
        tenants += 1;
        let Some(plan) = &t.plan else { continue };
        for f in plan.diagnostics.iter().filter(|f| f.code == "destructive") {
            if f.severity == pb::Severity::Error as i32 {
                unaccepted.push(format!("tenant {}: {}", t.tenant, f.message));
            }
        }
    }
    if !unaccepted.is_empty() {
        return accept(&req.fleet, "rollback", &unaccepted);
    }
    if yes || tenants <= 1 {
        return Ok(Decision::Go);
    }
    let go = ask(&format!(
        "Roll back {what} on {tenants} tenants of fleet {}? (`avocet rollback --dry-run` \
         shows each tenant's steps)",
        req.fleet
    ))?;
    Ok(if go { Decision::Go } else { Decision::Declined })
}

/// The plan in a few lines: tenants and waves, the migrations pending on the first page,
/// and every finding.
fn summary(plan: &pb::PlanResponse) -> String {
    // In plan order (each tenant's steps run in version order), each version once.
    let mut versions: Vec<String> = Vec::new();
    for s in plan.tenants.iter().flat_map(|t| &t.steps) {
        let shown = s.version.text();
        if !versions.contains(&shown) {
            versions.push(shown);
        }
    }
    let mut out = format!(
        "fleet {}: {} tenants in {} wave(s)\n",
        plan.fleet,
        plan.tenant_count,
        plan.waves.len().max(1)
    );
    let listed = &versions;
    out += &format!(
        "  pending on the first {} tenants: {} migration(s){}\n",
        plan.tenants.len(),
        versions.len(),
        match listed.is_empty() {
            true => String::new(),
            false => format!(" (versions {})", listed.join(", ")),
        }
    );
    for f in &plan.findings {
        let kind = match f.kind.as_str() {
            _ if f.blocks => "DESTRUCTIVE",
            "destructive" => "destructive (a warning here)",
            "data_rewrite" => "data rewrite",
            "lock_hazard" => "lock hazard",
            _ => "note",
        };
        let allowed = match f.allowed && f.kind == "destructive" {
            true => " (the file allows it)",
            false => "",
        };
        out += &format!(
            "  {kind}: version {} ({}) line {}: {}: {}{allowed}\n",
            f.version.text(),
            f.name,
            f.line,
            f.code,
            f.message
        );
    }
    out
}
