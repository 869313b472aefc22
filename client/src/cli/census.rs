//! `avocet census`: the fleet's drift classes, one tenant's diff (`--tenant`), or one
//! tenant's canonical schema (`--export`).

use avocet_client::{Client, VersionField, pb};
use serde_json::{Value, json};

use super::{Output, json as out_json};

/// Runs the census `req` asks for and prints it; true when every tenant was read and none
/// drifted (for `--tenant`: that tenant is in its version's expected class).
pub(crate) async fn run(
    client: &mut Client,
    req: pb::CensusRequest,
    out: Output,
) -> anyhow::Result<bool> {
    let export = req.export;
    let focus = !req.focus_tenant.is_empty();
    let bar = match out {
        Output::Text if !export => Some(indicatif::ProgressBar::new(0)),
        _ => None,
    };
    let result = client
        .census(req, |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(u64::from(total));
                bar.set_position(u64::from(done));
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let result = result?;
    if export {
        super::emit(&format!("{}\n", result.model_json));
        return Ok(true);
    }
    if focus {
        let class = result.focus.clone().unwrap_or_default();
        match out {
            Output::Json => out_json::print(&class_json(&class)),
            Output::Text => super::emit(&class_text(&class)),
        }
        return Ok(class.expected);
    }
    match out {
        Output::Json => out_json::print(&census_json(&result)),
        Output::Text => super::emit(&census_text(&result)),
    }
    Ok(result.unreadable.is_empty() && result.classes.iter().all(|c| c.expected))
}

fn class_json(c: &pb::DriftClass) -> Value {
    json!({
        "version": c.version.text(),
        "fingerprint": c.fingerprint,
        "expected": c.expected,
        "basis": c.basis,
        "tenants": c.tenants,
        "diff": c.diff.iter().map(|d| json!({
            "object": d.object, "change": d.change, "detail": d.detail,
        })).collect::<Vec<_>>(),
    })
}

/// `{"fleet", "tenants": N, "classes": [...], "unreadable": [...]}`.
fn census_json(r: &pb::CensusResult) -> Value {
    json!({
        "fleet": r.fleet,
        "tenants": r.tenants,
        "classes": r.classes.iter().map(class_json).collect::<Vec<_>>(),
        "unreadable": r.unreadable.iter().map(|u| json!({
            "tenant": u.tenant, "error": u.error,
        })).collect::<Vec<_>>(),
    })
}

fn class_text(c: &pb::DriftClass) -> String {
    let version = match c.version.text() {
        v if v.is_empty() => "none".to_owned(),
        v => v,
    };
    let what = match c.expected {
        true => format!("expected ({})", c.basis),
        false => "DRIFT".to_owned(),
    };
    let mut text = format!(
        "version {version}  {}  {what}  {} tenant(s): {}\n",
        &c.fingerprint[..c.fingerprint.len().min(12)],
        c.tenants.len(),
        shown(&c.tenants)
    );
    for d in &c.diff {
        text.push_str(&format!("    {}: {}", d.object, d.change));
        if !d.detail.is_empty() {
            text.push_str(&format!(" ({})", d.detail));
        }
        text.push('\n');
    }
    text
}

/// At most 10 ids, then how many more.
fn shown(ids: &[String]) -> String {
    let mut s = ids.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > 10 {
        s.push_str(&format!(", … {} more", ids.len() - 10));
    }
    s
}

fn census_text(r: &pb::CensusResult) -> String {
    let drifted: usize = r
        .classes
        .iter()
        .filter(|c| !c.expected)
        .map(|c| c.tenants.len())
        .sum();
    let classes = r.classes.iter().filter(|c| !c.expected).count();
    let mut text = format!(
        "fleet {}: {} tenant(s), {drifted} drifted in {classes} drift class(es), {} unreadable\n",
        r.fleet,
        r.tenants,
        r.unreadable.len()
    );
    for c in &r.classes {
        text.push_str(&class_text(c));
    }
    for u in &r.unreadable {
        text.push_str(&format!("  unreadable {}: {}\n", u.tenant, u.error));
    }
    text
}
