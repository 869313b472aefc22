//! Running one command against the daemon.

use std::process::ExitCode;

use anyhow::{Context, bail};
use avocet_client::{Client, pb};

use super::{
    Args, Command, EXIT_TENANT_FAILED, Mark, Output, Target, TenantsCommand, Usage, VersionArg,
    backups, census, confirm, json, new, rollouts, tenants, text,
};

/// Runs the parsed command and returns the exit status.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(command) = ignores_selection(&args.command)
        && (!args.target.tenants.is_empty() || args.target.selector.is_some())
    {
        return Err(Usage(format!(
            "{command} does not take --tenants or --selector (they choose the tenants of \
             plan, apply, rollback, verify, status, tenants, baseline and adopt)"
        ))
        .into());
    }
    match &args.command {
        Command::Completions { shell } => {
            super::docs::completions(*shell);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            super::docs::man()?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    // `avocet new --dir D` writes files; it needs no daemon.
    if let Command::New {
        description,
        dir: Some(dir),
        format,
    } = &args.command
    {
        for path in new::create(dir, description, format)? {
            super::emit(&format!("{}\n", path.display()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let timeouts = avocet_client::Timeouts {
        connect: args.timeout,
        request: args.timeout,
        ..Default::default()
    };
    let credentials = avocet_client::Credentials {
        token: args.token.clone(),
        ca: args.ca.clone(),
        cert: args.cert.clone().zip(args.key.clone()),
        // W3C trace context from the environment (as OpenTelemetry's env carriers name it):
        // the daemon's spans of this call join the caller's trace.
        traceparent: std::env::var("TRACEPARENT").ok().filter(|v| !v.is_empty()),
        tracestate: std::env::var("TRACESTATE").ok().filter(|v| !v.is_empty()),
        insecure: args.insecure,
    };
    let mut client = Client::connect_as(&args.addr, timeouts, &credentials).await?;
    let out = args.output;
    let target = args.target;
    let addr = args.addr.clone();
    let ok = match args.command {
        Command::Plan {
            to,
            allow_out_of_order,
            accept_data_loss,
            strategy,
            set,
        } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let resp = client
                .plan_all(pb::PlanRequest {
                    fleet,
                    selector,
                    target_version: to.as_ref().map(VersionArg::wire),
                    allow_out_of_order,
                    accept_data_loss,
                    strategy: strategy.wire(),
                    set,
                    ..Default::default()
                })
                .await?;
            match out {
                Output::Json => json::print(&json::plan(&resp)),
                Output::Text => text::plan(&resp),
            }
            !resp.tenants.iter().any(|t| t.blocked)
        }
        Command::Apply {
            to,
            run,
            allow_out_of_order,
            accept_data_loss,
            expect_digest,
            require_expected_schema,
            set,
        } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let req = pb::ApplyRequest {
                fleet,
                selector,
                target_version: to.as_ref().map(VersionArg::wire),
                concurrency: run.concurrency().unwrap_or(0),
                dry_run: run.dry_run,
                stop_on_first_failure: run.stop_on_failure,
                allow_out_of_order,
                accept_data_loss,
                expected_set_digest: expect_digest.unwrap_or_default(),
                transaction: super::Transaction::wire(run.transaction),
                strategy: run.strategy(),
                require_expected_schema,
                set,
            };
            let mut req = req;
            match confirm::apply(&mut client, &req, run.yes).await? {
                confirm::Decision::Declined => return Ok(ExitCode::from(EXIT_TENANT_FAILED)),
                confirm::Decision::Accepted => req.accept_data_loss = true,
                confirm::Decision::Go => {}
            }
            let target = to.map(|v| v.text);
            let events = client.apply(req).await?;
            rollouts::started(events, out, run.detach, &addr, target).await?
        }
        Command::Rollback {
            steps,
            to,
            last_batch,
            accept_data_loss,
            run,
        } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            use pb::rollback_request::Target as T;
            let target = match (steps, &to, last_batch) {
                (Some(n), _, _) => T::Steps(n),
                (_, Some(v), _) => T::ToVersion(v.wire()),
                (_, _, true) => T::LastBatch(true),
                _ => T::Steps(1),
            };
            let what = match (&target, &to) {
                (T::Steps(1), _) => "the newest migration".to_owned(),
                (T::Steps(n), _) => format!("the newest {n} migrations"),
                // As typed (`0003` stays `0003`).
                (T::ToVersion(_), Some(v)) => format!("every migration above version {}", v.text),
                (T::ToVersion(v), None) => format!("every migration above version {v}"),
                (T::LastBatch(_), _) => "the last apply batch".to_owned(),
            };
            let req = pb::RollbackRequest {
                fleet,
                selector,
                target: Some(target),
                concurrency: run.concurrency().unwrap_or(0),
                dry_run: run.dry_run,
                stop_on_first_failure: run.stop_on_failure,
                transaction: super::Transaction::wire(run.transaction),
                strategy: run.strategy(),
                accept_data_loss,
            };
            let mut req = req;
            match confirm::rollback(&mut client, &req, &what, run.yes).await? {
                confirm::Decision::Declined => return Ok(ExitCode::from(EXIT_TENANT_FAILED)),
                confirm::Decision::Accepted => req.accept_data_loss = true,
                confirm::Decision::Go => {}
            }
            let events = client.rollback(req).await?;
            rollouts::started(events, out, run.detach, &addr, None).await?
        }
        Command::Verify { schema } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let resp = client
                .verify_all(pb::VerifyRequest {
                    fleet,
                    selector,
                    schema,
                    ..Default::default()
                })
                .await?;
            match out {
                Output::Json => json::print(&json::verify(&resp)),
                Output::Text => text::verify(&resp),
            }
            resp.tenants.iter().all(|t| t.ok)
        }
        Command::Status {
            tenant: Some(tenant),
            ..
        } => {
            let (fleet, _) = resolve(&mut client, target).await?;
            let resp = client.history(&fleet, &tenant).await?;
            match out {
                Output::Json => json::print(&json::history(&resp)),
                Output::Text => text::history(&resp),
            }
            !resp
                .records
                .iter()
                .any(|r| r.drift || r.missing || matches!(r.status.as_str(), "failed" | "running"))
        }
        Command::Status {
            refresh,
            tenant: None,
        } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let resp = client
                .status(pb::StatusRequest {
                    fleet,
                    selector,
                    refresh,
                    page_size: super::MAX_STATUS_LINES,
                    ..Default::default()
                })
                .await?;
            match out {
                Output::Json => json::print(&json::status(&resp)),
                Output::Text => text::status(&resp, refresh),
            }
            // A tenant that could not be read is not a clean bill of health.
            resp.unreachable == 0
        }
        Command::Tenants {
            action: Some(action),
        } => {
            let (fleet, _) = resolve(&mut client, target).await?;
            tenants::run(&mut client, &fleet, action, out).await?
        }
        Command::Tenants { action: None } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let resp = client
                .list_tenants(pb::ListTenantsRequest { fleet, selector })
                .await?;
            match out {
                Output::Json => json::print(&json::tenants(&resp)),
                Output::Text => text::tenants(&resp),
            }
            true
        }
        Command::Backup(args) => backups::backup(&mut client, target, args, out).await?,
        Command::Backups(cmd) => backups::run(&mut client, target, cmd, out).await?,
        Command::Restore(args) => backups::restore(&mut client, target, args, out).await?,
        Command::Census {
            tenant,
            export,
            ignore_generated_names,
            max_age,
        } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let selector = selector.unwrap_or_default();
            let req = pb::CensusRequest {
                fleet,
                tenant_ids: selector.tenant_ids,
                labels: selector.labels,
                ignore_generated_names,
                export: export.is_some(),
                focus_tenant: export.or(tenant).unwrap_or_default(),
                max_age_ms: max_age.map(|d| d.as_millis() as u64),
            };
            census::run(&mut client, req, out).await?
        }
        Command::Rollouts(cmd) => rollouts::run(&mut client, cmd, target.fleet, out, &addr).await?,
        Command::Sets(cmd) => super::sets::run(&mut client, cmd, out).await?,
        // Answered above, before connecting.
        Command::Completions { .. } | Command::Man => true,
        Command::Fleets => {
            let fleets = client.list_fleets().await?;
            match out {
                Output::Json => json::print(&json::fleets(&fleets)),
                Output::Text => text::fleets(&fleets),
            }
            true
        }
        Command::New {
            description,
            dir,
            format,
        } => {
            let (dir, format) = match dir {
                Some(d) => (d, format),
                None => {
                    let (fleet, _) = resolve(&mut client, target).await?;
                    let fleets = client.list_fleets().await?;
                    let info = fleets
                        .iter()
                        .find(|f| f.name == fleet)
                        .with_context(|| format!("the daemon serves no fleet {fleet:?}"))?;
                    let dir = std::path::PathBuf::from(&info.migrations_dir);
                    (dir, info.format.clone())
                }
            };
            let made = new::create(&dir, &description, &format)?;
            for path in &made {
                super::emit(&format!("{}\n", path.display()));
            }
            true
        }
        Command::Baseline { to } => {
            baseline(&mut client, target, out, Some(to.wire()), String::new()).await?
        }
        Command::Adopt { from } => baseline(&mut client, target, out, None, from).await?,
        Command::Repair {
            tenant,
            version,
            mark,
            accept_checksum,
            forget,
        } => {
            let (fleet, selector) = resolve(&mut client, target).await?;
            let (action, now) = match (mark, accept_checksum, forget) {
                (Some(Mark::Applied), ..) => (pb::RepairAction::MarkApplied, "applied"),
                (Some(Mark::RolledBack), ..) => (pb::RepairAction::MarkRolledBack, "rolled_back"),
                (None, true, _) => (
                    pb::RepairAction::AcceptChecksum,
                    "applied with the file's checksum",
                ),
                (None, false, true) => (pb::RepairAction::Forget, "forgotten (rolled_back)"),
                (None, false, false) => bail!("give --mark, --accept-checksum or --forget"),
            };
            let resp = client
                .repair(pb::RepairRequest {
                    fleet,
                    selector: selector.filter(|_| tenant.is_none()),
                    tenant: tenant.unwrap_or_default(),
                    version: Some(version.wire()),
                    action: action as i32,
                })
                .await?;
            match out {
                Output::Json => json::print(&json::repair(&resp)),
                Output::Text => super::emit(&text::repair(&resp, now)),
            }
            resp.tenants.iter().all(|t| t.error.is_empty())
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TENANT_FAILED)
    })
}

/// `baseline --to V` (`adopt_from` empty) or `adopt --from TOOL`; true when every tenant
/// was recorded.
async fn baseline(
    client: &mut Client,
    target: Target,
    out: Output,
    to_version: Option<pb::Version>,
    adopt_from: String,
) -> anyhow::Result<bool> {
    let (fleet, selector) = resolve(client, target).await?;
    let resp = client
        .baseline(pb::BaselineRequest {
            fleet,
            selector,
            to_version,
            adopt_from,
        })
        .await?;
    match out {
        Output::Json => json::print(&json::baseline(&resp)),
        Output::Text => text::baseline(&resp),
    }
    // A tenant left alone because it has history is the expected case, reported, not a
    // failure; any other refusal is for the operator to act on.
    Ok(resp
        .tenants
        .iter()
        .all(|t| t.error.is_empty() || t.has_history))
}

/// The fleet to use (the only one when not given) and the wire selector.
///
/// # Errors
/// [`Usage`] when the daemon serves several fleets and none was chosen; an error when it
/// serves none the caller may use or cannot be asked.
pub(super) async fn resolve(
    client: &mut Client,
    target: Target,
) -> anyhow::Result<(String, Option<pb::TenantSelector>)> {
    let fleet = match target.fleet {
        Some(f) => f,
        None => {
            let fleets = client.list_fleets().await?;
            match fleets.as_slice() {
                [only] => only.name.clone(),
                // The daemon lists only the fleets the caller may use.
                [] => bail!(
                    "the daemon serves no fleet you may use (a token scoped to fleets sees \
                     only those)"
                ),
                many => {
                    return Err(Usage(format!(
                        "the daemon serves several fleets; choose one with --fleet ({})",
                        many.iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into());
                }
            }
        }
    };
    let selector = pb::TenantSelector {
        tenant_ids: target.tenants,
        labels: target.selector.unwrap_or_default(),
    };
    Ok((fleet, Some(selector)))
}

/// The command's name when it works on one tenant, or none, and so takes neither
/// `--tenants` nor `--selector` (global flags clap accepts everywhere).
fn ignores_selection(command: &Command) -> Option<&'static str> {
    match command {
        Command::New { .. } => Some("avocet new"),
        Command::Status {
            tenant: Some(_), ..
        } => Some("avocet status --tenant"),
        Command::Tenants {
            action: Some(TenantsCommand::Refresh),
        } => Some("avocet tenants refresh"),
        Command::Tenants { action: Some(_) } => Some("avocet tenants add|remove|get (--id)"),
        Command::Rollouts(_) => Some("avocet rollouts"),
        Command::Backup(_) => Some("avocet backup (--tenant)"),
        Command::Backups(_) => Some("avocet backups"),
        Command::Restore(_) => Some("avocet restore (--tenant)"),
        Command::Fleets => Some("avocet fleets"),
        Command::Sets(_) => Some("avocet sets"),
        Command::Completions { .. } => Some("avocet completions"),
        Command::Man => Some("avocet man"),
        _ => None,
    }
}
