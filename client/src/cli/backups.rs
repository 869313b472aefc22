//! `avocet backup`, `avocet backups list|get|delete` and `avocet restore`.

use std::io::Write as _;

use anyhow::bail;
use avocet_client::{Client, VersionField, pb};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Value, json};

use super::{Output, Target, confirm, json as js};

/// `avocet backup`.
#[derive(ClapArgs)]
pub(crate) struct BackupArgs {
    /// The tenant to back up.
    #[arg(long)]
    pub(crate) tenant: String,
    /// A name to find the backup by later (shown by `avocet backups list`).
    #[arg(long)]
    pub(crate) name: Option<String>,
}

/// `avocet restore`.
#[derive(ClapArgs)]
pub(crate) struct RestoreArgs {
    /// The tenant to restore.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The backup's id, as `avocet backups list` shows it.
    #[arg(long)]
    pub(crate) backup: String,
    /// Do not ask (the question names the tenant and the backup's time and version).
    /// Without a terminal, a restore needs it.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// `avocet backups …`.
#[derive(Subcommand)]
pub(crate) enum BackupsCommand {
    /// Backups, newest first: of `--fleet` (every fleet you may see when not given), of
    /// one tenant with `--tenant`.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One backup: file, size, SHA-256, tool and version, the migration it preceded.
    Get {
        /// The backup's id.
        id: String,
    },
    /// Delete a backup's file and record.
    Delete {
        /// The backup's id.
        id: String,
    },
}

/// `avocet backup --tenant T [--name N]`; true when it was taken.
pub(crate) async fn backup(
    client: &mut Client,
    target: Target,
    args: BackupArgs,
    out: Output,
) -> anyhow::Result<bool> {
    let (fleet, _) = super::run::resolve(client, target).await?;
    let name = args.name.unwrap_or_default();
    let b = client.take_backup(&fleet, &args.tenant, &name).await?;
    show(&[b], out);
    Ok(true)
}

/// `avocet backups list|get|delete`.
pub(crate) async fn run(
    client: &mut Client,
    target: Target,
    cmd: BackupsCommand,
    out: Output,
) -> anyhow::Result<bool> {
    match cmd {
        BackupsCommand::List { tenant, limit } => {
            let fleet = target.fleet.unwrap_or_default();
            let listed = client
                .list_backups(&fleet, &tenant.unwrap_or_default(), limit)
                .await?;
            show(&listed, out);
        }
        BackupsCommand::Get { id } => {
            let (fleet, _) = super::run::resolve(client, target).await?;
            let b = client.get_backup(&fleet, &id).await?;
            show(&[b], out);
        }
        BackupsCommand::Delete { id } => {
            let (fleet, _) = super::run::resolve(client, target).await?;
            let deleted = client.delete_backup(&fleet, &id).await?;
            match out {
                Output::Json => js::print(&json!({ "id": id, "deleted": deleted })),
                Output::Text if deleted => super::emit(&format!("backup {id} deleted\n")),
                Output::Text => super::emit(&format!("no backup {id} (nothing deleted)\n")),
            }
        }
    }
    Ok(true)
}

/// `avocet restore --tenant T --backup ID`: asks first (unless `--yes`), naming the tenant
/// and the backup's time and version; true when restored.
pub(crate) async fn restore(
    client: &mut Client,
    target: Target,
    args: RestoreArgs,
    out: Output,
) -> anyhow::Result<bool> {
    let (fleet, _) = super::run::resolve(client, target).await?;
    let b = client.get_backup(&fleet, &args.backup).await?;
    if b.tenant != args.tenant {
        bail!(
            "backup {} is of tenant {}, not {}",
            args.backup,
            b.tenant,
            args.tenant
        );
    }
    let question = format!(
        "restore tenant {} of fleet {fleet} from backup {} taken {} at version {}? Its data \
         now is replaced by the backup's",
        args.tenant,
        b.id,
        time(b.started_at_unix_ms),
        version(&b.version.text())
    );
    if !args.yes {
        if !confirm::interactive() {
            return Err(super::Usage(format!(
                "{question}: not restored without a terminal to ask on; give --yes"
            ))
            .into());
        }
        if !confirm::ask(&question)? {
            eprintln!("not restored");
            return Ok(false);
        }
    }
    let r = client.restore(&fleet, &args.tenant, &args.backup).await?;
    match out {
        Output::Json => js::print(&json!({
            "fleet": fleet,
            "tenant": args.tenant,
            "backup": r.backup.as_ref().map(value),
            "version": r.version.text(),
            "duration_ms": r.duration_ms,
        })),
        Output::Text => super::emit(&format!(
            "tenant {} restored from backup {} (version {}, {} ms)\n",
            args.tenant,
            args.backup,
            version(&r.version.text()),
            r.duration_ms
        )),
    }
    Ok(true)
}

/// `version`, or `none` when empty.
fn version(v: &str) -> &str {
    if v.is_empty() { "none" } else { v }
}

/// A Unix ms time as `2026-12-07 03:30:00 UTC`.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// One backup as JSON.
fn value(b: &pb::Backup) -> Value {
    json!({
        "id": b.id, "fleet": b.fleet, "tenant": b.tenant, "name": b.name,
        "rollout_id": b.rollout_id, "before_version": b.before_version.text(),
        "before_direction": b.before_direction, "version": b.version.text(), "path": b.path,
        "bytes": b.bytes, "sha256": b.sha256, "started_at_unix_ms": b.started_at_unix_ms,
        "finished_at_unix_ms": b.finished_at_unix_ms, "duration_ms": b.duration_ms,
        "tool": b.tool, "tool_version": b.tool_version, "state": b.state, "error": b.error,
    })
}

/// Backups as a table (text) or a document (JSON).
fn show(backups: &[pb::Backup], out: Output) {
    if out == Output::Json {
        js::print(&json!({ "backups": backups.iter().map(value).collect::<Vec<_>>() }));
        return;
    }
    let mut table = tabwriter::TabWriter::new(Vec::new());
    let _ = writeln!(
        table,
        "ID\tFLEET\tTENANT\tTAKEN\tVERSION\tBEFORE\tBYTES\tSTATE\tNAME"
    );
    for b in backups {
        let before = match &b.before_version {
            None => "-".to_owned(),
            Some(v) => format!("{v} ({})", b.before_direction),
        };
        let state = match b.error.is_empty() {
            true => b.state.clone(),
            false => format!("{}: {}", b.state, b.error),
        };
        let _ = writeln!(
            table,
            "{}\t{}\t{}\t{}\t{}\t{before}\t{}\t{state}\t{}",
            b.id,
            b.fleet,
            b.tenant,
            time(b.started_at_unix_ms),
            version(&b.version.text()),
            b.bytes,
            b.name
        );
    }
    let text = table
        .into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    super::emit(&text);
    if let [b] = backups
        && b.state == "taken"
    {
        super::emit(&format!(
            "file {}\nsha256 {}\ntool {} ({})\n",
            b.path, b.sha256, b.tool, b.tool_version
        ));
    }
}
