//! `avocet tenants add|remove|get`.

use anyhow::bail;
use avocet_client::{Client, pb};

use super::{Output, TenantsCommand, json, text};

/// Runs `avocet tenants …` on `fleet`; true when it did what it was asked.
pub(crate) async fn run(
    client: &mut Client,
    fleet: &str,
    cmd: TenantsCommand,
    out: Output,
) -> anyhow::Result<bool> {
    let tenant = match cmd {
        TenantsCommand::Add {
            id,
            dsn,
            schema,
            labels,
        } => {
            let req = pb::RegisterTenantRequest {
                fleet: fleet.into(),
                tenant: id,
                dsn,
                schema: schema.unwrap_or_default(),
                labels: labels.into_iter().collect(),
            };
            client.register_tenant(req).await?
        }
        TenantsCommand::Remove { id } => {
            client.deregister_tenant(fleet, &id).await?;
            match out {
                Output::Json => json::print(&serde_json::json!({ "fleet": fleet, "removed": id })),
                Output::Text => super::emit(&format!("tenant {id} removed from fleet {fleet}\n")),
            }
            return Ok(true);
        }
        TenantsCommand::Get { id } => client.get_tenant(fleet, &id).await?,
        TenantsCommand::Refresh => {
            let r = client.refresh_tenants(fleet).await?;
            match out {
                Output::Json => json::print(&serde_json::json!({
                    "fleet": fleet, "found": r.found, "added": r.added, "removed": r.removed,
                    "changed": r.changed, "rejected": r.rejected,
                })),
                Output::Text => {
                    let mut text = format!(
                        "fleet {fleet}: {} found, {} added, {} removed, {} changed, {} left out\n",
                        r.found,
                        r.added.len(),
                        r.removed.len(),
                        r.changed.len(),
                        r.rejected.len()
                    );
                    for why in &r.rejected {
                        text.push_str(&format!("  left out: {why}\n"));
                    }
                    super::emit(&text);
                }
            }
            return Ok(r.rejected.is_empty());
        }
    };
    let resp = pb::ListTenantsResponse {
        fleet: fleet.into(),
        tenants: vec![tenant],
    };
    match out {
        Output::Json => json::print(&json::tenants(&resp)),
        Output::Text => text::tenants(&resp),
    }
    Ok(true)
}

/// `KEY=VALUE` of `--label`.
pub(crate) fn parse_label(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("expected KEY=VALUE, found {s:?}"),
    }
}
