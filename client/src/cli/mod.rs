//! Arguments and dispatch of the `avocet` command line.
//!
//! | file | what |
//! | --- | --- |
//! | `args.rs` | every subcommand and flag, as clap reads them |
//! | `run.rs` | dispatch: each command's request, and how its answer is shown |
//! | `progress.rs` | `--output text` of a running rollout: the bar and a line per tenant |
//! | `text.rs` | `--output text`: tables and summaries |
//! | `json.rs` | `--output json` |
//! | `fail.rs` | errors as the operator reads them |
//! | `confirm.rs` | the question asked before a change |
//! | `new.rs` | `avocet new` |
//! | `docs.rs` | shell completions, the man page and `docs/cli.md`, from the clap definition |
//! | `backups.rs`, `census.rs`, `rollouts.rs`, `sets.rs`, `tenants.rs` | those subcommands |

mod args;
mod backups;
mod census;
mod confirm;
mod docs;
mod fail;
mod json;
mod new;
mod progress;
mod rollouts;
mod run;
mod sets;
mod tenants;
mod text;

use clap::Parser;

pub(crate) use args::{
    Args, Command, Mark, Output, RolloutsCommand, State, Target, TenantsCommand, Transaction,
    VersionArg, version_above,
};
pub(crate) use fail::show as show_error;
pub(crate) use run::run;

/// Writes to stdout, ignoring a closed pipe (`avocet status | head`).
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Exit status when any tenant failed, verify found problems, or a plan is blocked.
pub(crate) const EXIT_TENANT_FAILED: u8 = 1;
/// Per-tenant lines `avocet status` asks for (the summary covers every tenant).
pub(crate) const MAX_STATUS_LINES: u32 = 5000;
/// Exit status when the daemon is unreachable or rejects the request.
pub(crate) const EXIT_ERROR: u8 = 3;
/// Exit status for bad usage: what clap refuses, and what the client finds wrong with the
/// command before or without the daemon's help (several fleets and no `--fleet`, flags the
/// command does not take).
pub(crate) const EXIT_USAGE: u8 = 2;

/// `error` and its causes in one line, `: ` between them, leaving out a cause whose text the
/// line already holds: transport errors repeat themselves (`tcp connect error: tcp connect
/// error`), and an error that quotes its source is followed by that source again.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The command line's arguments; on bad usage, clap's error (exit status 2) with a usage line
/// that shows only what the subcommand needs: clap echoes every flag that has a value,
/// and the global ones filled from the environment (`AVOCET_ADDR`, `AVOCET_TOKEN`…) or
/// typed read as if they were required there.
pub(crate) fn parse() -> Args {
    let error = match Args::try_parse() {
        Ok(args) => return args,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => e,
    };
    let text = error.render().to_string();
    let globals: Vec<String> = <Args as clap::CommandFactory>::command()
        .get_arguments()
        .filter(|a| a.is_global_set())
        .filter_map(|a| {
            Some(format!(
                " --{} <{}>",
                a.get_long()?,
                a.get_id().as_str().to_uppercase()
            ))
        })
        .collect();
    let fixed: Vec<String> = text
        .lines()
        .map(|line| match line.starts_with("Usage: ") {
            true => globals
                .iter()
                .fold(line.to_owned(), |l, g| l.replace(g, "")),
            false => line.to_owned(),
        })
        .collect();
    eprintln!("{}", fixed.join("\n"));
    std::process::exit(error.exit_code());
}

/// A command the client refuses as bad usage (exit status [`EXIT_USAGE`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// The exit status of a command that failed with `error`: [`EXIT_USAGE`] for a [`Usage`]
/// error, [`EXIT_ERROR`] for everything else (the daemon unreachable or refusing).
pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Usage>() {
        Some(_) => EXIT_USAGE,
        None => EXIT_ERROR,
    }
}
