//! Asking before a change reaches many tenants. An interactive `apply` or `rollback` on more
//! than one tenant shows what it would do and asks; `--yes` skips the question. Without a
//! terminal and without `--yes`, an apply goes ahead only when nothing it runs destroys data.

use std::io::{BufRead, IsTerminal, Write};

use avocet_client::{Client, pb};

/// Tenants whose plans the summary reads (one page); the totals cover every tenant.
const SUMMARY_TENANTS: u32 = 100;

/// True when both stdin and stderr are terminals: someone can answer.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question` on stderr; true for `y` or `yes`.
fn ask(question: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Whether apply `req` goes ahead (a dry run always does).
///
/// Without a terminal: yes, unless the fleet's set has destructive versions up to the
/// target and the plan of the first tenants runs one; then it says which and asks for
/// `--yes`. With a terminal, on more than one tenant: the plan summary, then the question.
///
/// # Errors
/// When the daemon does not answer the fleet list or the plan, or the answer cannot be read.
pub(crate) async fn apply(client: &mut Client, req: &pb::ApplyRequest) -> anyhow::Result<bool> {
    if req.dry_run {
        return Ok(true);
    }
    let tty = interactive();
    if !tty {
        let fleets = client.list_fleets().await?;
        let risky = fleets.iter().find(|f| f.name == req.fleet).is_none_or(|f| {
            f.destructive_versions
                .iter()
                // A dotted version (text only) is not compared here: it counts.
                .any(|v| req.target_version.is_none_or(|t| *v <= t))
                || f.destructive_versions.len() < f.destructive_versions_text.len()
        });
        if !risky {
            return Ok(true);
        }
    }
    let plan = client
        .plan(pb::PlanRequest {
            fleet: req.fleet.clone(),
            selector: req.selector.clone(),
            target_version: req.target_version,
            target_version_text: req.target_version_text.clone(),
            allow_out_of_order: req.allow_out_of_order,
            accept_data_loss: req.accept_data_loss,
            strategy: req.strategy.clone(),
            page_size: SUMMARY_TENANTS,
            ..Default::default()
        })
        .await?;
    let destructive = plan.findings.iter().any(|f| f.kind == "destructive");
    if !tty {
        if destructive {
            eprint!("{}", summary(&plan));
            eprintln!(
                "not applied: these migrations destroy data, and there is no terminal to \
                 ask; pass --yes to apply them without asking"
            );
        }
        return Ok(!destructive);
    }
    if plan.tenant_count <= 1 {
        return Ok(true);
    }
    eprint!("{}", summary(&plan));
    ask(&format!(
        "Apply to {} tenants of fleet {}?",
        plan.tenant_count, plan.fleet
    ))
}

/// Whether a rollback of `what` on the selected tenants goes ahead: asked on a terminal when
/// it selects more than one tenant.
///
/// # Errors
/// When the daemon does not answer, or the answer cannot be read.
pub(crate) async fn rollback(
    client: &mut Client,
    req: &pb::RollbackRequest,
    what: &str,
) -> anyhow::Result<bool> {
    if req.dry_run || !interactive() {
        return Ok(true);
    }
    let tenants = client
        .list_tenants(pb::ListTenantsRequest {
            fleet: req.fleet.clone(),
            selector: req.selector.clone(),
        })
        .await?
        .tenants
        .len();
    if tenants <= 1 {
        return Ok(true);
    }
    ask(&format!(
        "Roll back {what} on {tenants} tenants of fleet {}? (`avocet rollback --dry-run` \
         shows each tenant's steps)",
        req.fleet
    ))
}

/// The plan in a few lines: tenants and waves, the migrations pending on the first page,
/// and every finding.
fn summary(plan: &pb::PlanResponse) -> String {
    // In plan order (each tenant's steps run in version order), each version once.
    let mut versions: Vec<&str> = Vec::new();
    for s in plan.tenants.iter().flat_map(|t| &t.steps) {
        if !versions.contains(&s.version_text.as_str()) {
            versions.push(&s.version_text);
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
            "destructive" => "DESTRUCTIVE",
            "lock_hazard" => "lock hazard",
            _ => "note",
        };
        let allowed = match f.allowed && f.kind == "destructive" {
            true => " (the file allows it)",
            false => "",
        };
        out += &format!(
            "  {kind}: version {} ({}) line {}: {}: {}{allowed}\n",
            f.version_text, f.name, f.line, f.code, f.message
        );
    }
    out
}
