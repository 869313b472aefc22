//! `avocet sets publish|list|get|diff|tag|delete`: migration sets published through the API.

use std::path::PathBuf;

use anyhow::Context;
use avocet_client::{Client, VersionField, pb, read_set_dir};
use clap::Subcommand;

use super::Output;

/// `avocet sets …`.
#[derive(Subcommand)]
pub(crate) enum SetsCommand {
    /// Publish a migration set, a directory or a tar archive: its files are stored in the
    /// daemon's control store under the set's digest (the digest `avocet plan` shows for
    /// the same directory), which is printed. Publishing the same files again changes
    /// nothing.
    Publish {
        /// The set's directory (its files, and those of the directories directly inside
        /// it, as diesel lays them out; names starting with `.` are left out); or a file:
        /// a tar archive of those files (uncompressed ustar or pax, e.g. from
        /// `tar -cf set.tar -C DIR .`); or `-`: such an archive on standard input.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The dialect its scripts are read with: postgres, mysql or sqlite.
        #[arg(long)]
        dialect: String,
        /// Point this tag at the set once it is stored, e.g. `main` or
        /// `release-2026-12-06` (a fleet with `migrations = "published:main"` follows it).
        #[arg(long)]
        tag: Option<String>,
        /// The set's layout (sqlx, golang-migrate, diesel, dbmate, flyway, refinery);
        /// detected by default, as the daemon detects a directory's.
        #[arg(long)]
        format: Option<String>,
    },
    /// List the published sets, newest first, with their tags.
    List,
    /// Show a published set (a digest or a tag): its files, their sizes and SHA-256.
    Get {
        /// A digest or a tag.
        set: String,
        /// Write the set's files into this directory (created; it must not hold them).
        #[arg(long, value_name = "DIR")]
        files: Option<PathBuf>,
    },
    /// The versions set TO adds, removes and changes against set FROM (digests or tags).
    Diff {
        /// The set compared against.
        from: String,
        /// The set compared.
        to: String,
    },
    /// Delete a published set (a digest or a tag) and the tags naming it; refused while a
    /// fleet follows it or an unfinished rollout runs it.
    Delete {
        /// A digest or a tag.
        set: String,
    },
    /// Point tag NAME at a published set (a digest or another tag).
    Tag {
        /// The tag.
        name: String,
        /// A digest or a tag.
        set: String,
    },
}

/// Runs `avocet sets …`; true when it did what it was asked.
pub(crate) async fn run(
    client: &mut Client,
    cmd: SetsCommand,
    out: Output,
) -> anyhow::Result<bool> {
    match cmd {
        SetsCommand::Publish {
            path,
            dialect,
            tag,
            format,
        } => {
            let header = pb::PublishSetHeader {
                format: format.unwrap_or_default(),
                dialect,
                tag: tag.clone().unwrap_or_default(),
            };
            let r = if path.as_os_str() == "-" {
                let mut archive = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut archive)
                    .context("reading the tar archive from standard input")?;
                client.publish_tar(header, archive).await?
            } else if path.is_dir() {
                client.publish_set(header, read_set_dir(&path)?).await?
            } else {
                let archive = std::fs::read(&path)
                    .with_context(|| format!("reading the tar archive {}", path.display()))?;
                client.publish_tar(header, archive).await?
            };
            match out {
                Output::Json => super::json::print(&serde_json::json!({
                    "digest": r.digest, "created": r.created, "migrations": r.migrations,
                    "files": r.files, "bytes": r.bytes, "format": r.format, "tag": tag,
                })),
                Output::Text => {
                    let what = match r.created {
                        true => "published",
                        false => "already published",
                    };
                    let tag = tag.map(|t| format!(", tagged {t}")).unwrap_or_default();
                    eprintln!(
                        "{what}: {} migrations, {} files, {} bytes ({}){tag}",
                        r.migrations, r.files, r.bytes, r.format
                    );
                    super::emit(&format!("{}\n", r.digest));
                }
            }
        }
        SetsCommand::List => {
            let sets = client.list_sets().await?;
            match out {
                Output::Json => super::json::print(&serde_json::Value::Array(
                    sets.iter().map(info_json).collect(),
                )),
                Output::Text => {
                    let mut text = String::from(
                        "DIGEST\tFORMAT\tDIALECT\tMIGRATIONS\tBYTES\tPUBLISHED BY\tTAGS\n",
                    );
                    for s in &sets {
                        text.push_str(&format!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                            s.digest,
                            s.format,
                            s.dialect,
                            s.migrations,
                            s.bytes,
                            s.published_by,
                            s.tags.join(",")
                        ));
                    }
                    super::emit(&text);
                }
            }
        }
        SetsCommand::Get { set, files } => {
            let r = client.get_set(&set, files.is_some()).await?;
            let info = r.set.context("the daemon sent no set")?;
            if let Some(dir) = files {
                for f in &r.files {
                    let path = dir.join(&f.path);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("creating {}", parent.display()))?;
                    }
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .and_then(|mut file| std::io::Write::write_all(&mut file, &f.data))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            match out {
                Output::Json => {
                    let mut v = info_json(&info);
                    v["files"] = r
                        .files
                        .iter()
                        .map(|f| serde_json::json!({"path": f.path, "bytes": f.bytes, "sha256": f.sha256}))
                        .collect();
                    super::json::print(&v);
                }
                Output::Text => {
                    let mut text = format!(
                        "set {} ({}, {}, {} migrations, {} bytes), tags: {}\n",
                        info.digest,
                        info.format,
                        info.dialect,
                        info.migrations,
                        info.bytes,
                        info.tags.join(", ")
                    );
                    for f in &r.files {
                        text.push_str(&format!("  {}\t{}\t{}\n", f.path, f.bytes, f.sha256));
                    }
                    super::emit(&text);
                }
            }
        }
        SetsCommand::Diff { from, to } => {
            let d = client.diff_sets(&from, &to).await?;
            let list = |v: &[pb::SetVersion]| -> Vec<serde_json::Value> {
                v.iter()
                    .map(|m| serde_json::json!({"version": m.version.text(), "name": m.name}))
                    .collect()
            };
            match out {
                Output::Json => super::json::print(&serde_json::json!({
                    "from_digest": d.from_digest, "to_digest": d.to_digest,
                    "added": list(&d.added), "removed": list(&d.removed),
                    "changed": list(&d.changed),
                })),
                Output::Text => {
                    let mut text = format!("{} -> {}\n", d.from_digest, d.to_digest);
                    for (sign, v) in [("+", &d.added), ("-", &d.removed), ("~", &d.changed)] {
                        for m in v {
                            text.push_str(&format!("{sign} {} {}\n", m.version.text(), m.name));
                        }
                    }
                    super::emit(&text);
                }
            }
            return Ok(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty());
        }
        SetsCommand::Delete { set } => {
            let r = client.delete_set(&set).await?;
            match out {
                Output::Json => super::json::print(&serde_json::json!({
                    "digest": r.digest, "tags": r.tags,
                })),
                Output::Text => super::emit(&format!(
                    "set {} deleted, with tags [{}]\n",
                    r.digest,
                    r.tags.join(", ")
                )),
            }
        }
        SetsCommand::Tag { name, set } => {
            let r = client.tag_set(&name, &set).await?;
            match out {
                Output::Json => super::json::print(&serde_json::json!({
                    "name": r.name, "digest": r.digest, "previous_digest": r.previous_digest,
                })),
                Output::Text => {
                    let from = match r.previous_digest.as_str() {
                        "" => String::from(" (new tag)"),
                        d => format!(" (was {d})"),
                    };
                    super::emit(&format!("tag {} -> {}{from}\n", r.name, r.digest));
                }
            }
        }
    }
    Ok(true)
}

fn info_json(s: &pb::SetInfo) -> serde_json::Value {
    serde_json::json!({
        "digest": s.digest, "format": s.format, "dialect": s.dialect, "bytes": s.bytes,
        "files": s.files, "migrations": s.migrations, "published_by": s.published_by,
        "published_at_unix_ms": s.published_at_unix_ms, "tags": s.tags,
    })
}
