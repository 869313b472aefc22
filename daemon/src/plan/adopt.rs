//! Adoption: which versions of the set another tool's history table says are applied, or
//! why that history cannot be taken over. Pure: the rows are read by the dialect.
//!
//! Each tool's rules, from its source: sqlx keeps one row per version with `success` and a
//! SHA-384 checksum; golang-migrate keeps only the current version and a `dirty` flag (every
//! version up to it is applied); dbmate and diesel keep one row per version (diesel without
//! its dashes) and no checksum; Flyway keeps one row per event by `installed_rank` (`SQL`
//! applies a version, `UNDO_SQL` and `DELETE` unapply it, `BASELINE` applies every version up
//! to it, and so does `SQL_BASELINE`, a baseline migration that ran) with `success` and a
//! CRC-32 checksum; refinery keeps one row per version with a
//! SipHash checksum.

use std::collections::BTreeSet;

use crate::model::{
    ForeignRow, Migration, MigrationKey, MigrationSet, SetFormat, Version, flyway_checksum,
    flyway_description, refinery_checksum, sqlx_checksum,
};

/// Why another tool's history cannot be adopted. Nothing is written then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AdoptRefusal {
    /// The tool's table does not exist on the tenant.
    #[error("no {tool} history table on this tenant")]
    NoTable {
        /// The tool.
        tool: SetFormat,
    },
    /// The tool marks a migration unfinished (failed or dirty): fix it with the tool first.
    #[error(
        "{tool} shows version {version} unfinished (failed or dirty); resolve it with {tool} first"
    )]
    Unfinished {
        /// The tool.
        tool: SetFormat,
        /// The version as the tool stores it.
        version: String,
    },
    /// A version the tool applied that the set has no file for, or cannot read.
    #[error("{tool} applied version {version}, which the migration set does not have")]
    NotInSet {
        /// The tool.
        tool: SetFormat,
        /// The version as the tool stores it.
        version: String,
    },
    /// The file's checksum is not the one the tool recorded when it ran it.
    #[error(
        "version {version} ({name}) changed since {tool} applied it: checksum {recorded} \
         recorded, {file} for the file"
    )]
    Checksum {
        /// The tool.
        tool: SetFormat,
        /// The migration's key.
        version: MigrationKey,
        /// The migration's name.
        name: String,
        /// What the tool recorded.
        recorded: String,
        /// What the file gives.
        file: String,
    },
    /// A row Avocet cannot take over, such as a Flyway row of a type it does not know.
    #[error("{tool} row not supported: {what}")]
    Unsupported {
        /// The tool.
        tool: SetFormat,
        /// What the row is.
        what: String,
    },
}

/// The migrations of `set` (their keys) that `tool`'s history `rows` say are applied,
/// ascending.
///
/// # Errors
/// [`AdoptRefusal`] for an unfinished row, a version the set lacks, a checksum that differs
/// from the file's, or a row of a kind Avocet does not support.
pub(crate) fn adoption(
    set: &MigrationSet,
    tool: SetFormat,
    rows: &[ForeignRow],
) -> Result<Vec<MigrationKey>, AdoptRefusal> {
    let mut applied = BTreeSet::new();
    for row in rows {
        let raw = row.version.clone().unwrap_or_default();
        if !row.ok {
            // A Flyway row without a version is a repeatable's run: named by its key (by
            // Flyway's description when the set has no such repeatable).
            let version = match &row.version {
                None if tool == SetFormat::Flyway => repeatable_in_set(set, row)
                    .map_or_else(|_| unknown_repeatable_key(row), |m| m.version.to_string()),
                _ => raw,
            };
            return Err(AdoptRefusal::Unfinished { tool, version });
        }
        if tool == SetFormat::Flyway && flyway_row(set, row, &mut applied)? {
            continue;
        }
        let m = in_set(set, tool, &raw)?;
        check_checksum(tool, m, row)?;
        match tool {
            SetFormat::GolangMigrate => applied.extend(
                set.iter()
                    .map(|m| m.version.clone())
                    .filter(|v| *v <= m.version),
            ),
            _ => {
                applied.insert(m.version.clone());
            }
        }
    }
    Ok(applied.into_iter().collect())
}

/// The set's migration for `raw`, the version as `tool` stores it (diesel's without dashes,
/// dbmate's with its leading zeros).
fn in_set<'a>(
    set: &'a MigrationSet,
    tool: SetFormat,
    raw: &str,
) -> Result<&'a Migration, AdoptRefusal> {
    let digits: String = raw.trim().chars().filter(|c| *c != '-').collect();
    digits
        .parse::<Version>()
        .ok()
        .and_then(|v| set.get(v))
        .map(|m| &**m)
        .ok_or_else(|| AdoptRefusal::NotInSet {
            tool,
            version: raw.to_owned(),
        })
}

/// Handles Flyway's non-`SQL` rows and its repeatables' rows (true when done with the
/// row): `SCHEMA` is skipped, `BASELINE` and `SQL_BASELINE` apply every version up to their
/// own, `UNDO_SQL` and `DELETE` unapply theirs. A row without a version is a repeatable's run: the repeatable
/// counts as applied when its newest row's checksum is the file's.
fn flyway_row(
    set: &MigrationSet,
    row: &ForeignRow,
    applied: &mut BTreeSet<MigrationKey>,
) -> Result<bool, AdoptRefusal> {
    let tool = SetFormat::Flyway;
    let kind = row.kind.as_deref().unwrap_or("SQL");
    let Some(raw) = row.version.as_deref() else {
        return match kind {
            "SCHEMA" => Ok(true),
            "SQL" | "DELETE" => {
                let m = repeatable_in_set(set, row)?;
                // The newest row counts: a repeatable whose file changed since is pending,
                // and runs again, as Flyway would run it.
                let current = kind == "SQL" && check_checksum(tool, m, row).is_ok();
                match current {
                    true => applied.insert(m.version.clone()),
                    false => applied.remove(&m.version),
                };
                Ok(true)
            }
            other => Err(AdoptRefusal::Unsupported {
                tool,
                what: format!(
                    "type {other} for repeatable migration {:?}",
                    row.name.as_deref().unwrap_or("")
                ),
            }),
        };
    };
    match kind {
        "SCHEMA" => Ok(true),
        "BASELINE" => {
            let m = in_set(set, tool, raw)?;
            applied.extend(
                set.iter()
                    .map(|x| x.version.clone())
                    .filter(|v| *v <= m.version),
            );
            Ok(true)
        }
        // A baseline migration (`B<version>__…`) that ran: it stands for every versioned
        // migration up to its version, as on a tenant where Avocet ran it.
        "SQL_BASELINE" => {
            let b = raw
                .parse::<Version>()
                .ok()
                .and_then(|v| set.baseline(&v))
                .ok_or_else(|| AdoptRefusal::NotInSet {
                    tool,
                    version: raw.to_owned(),
                })?;
            check_checksum(tool, b, row)?;
            // Repeatables order after every version: never below.
            let below = |k: &MigrationKey| *k <= b.version;
            applied.extend(set.iter().map(|x| x.version.clone()).filter(below));
            applied.insert(b.version.clone());
            Ok(true)
        }
        "UNDO_SQL" | "DELETE" => {
            applied.remove(&in_set(set, tool, raw)?.version);
            Ok(true)
        }
        "SQL" => Ok(false),
        other => Err(AdoptRefusal::Unsupported {
            tool,
            what: format!("type {other} (version {raw})"),
        }),
    }
}

/// The set's repeatable a Flyway row without a version names: Flyway's description is the
/// file name's, underscores read as spaces (`R__Create_views.sql` is `Create views`).
fn repeatable_in_set<'a>(
    set: &'a MigrationSet,
    row: &ForeignRow,
) -> Result<&'a Migration, AdoptRefusal> {
    let description = row.name.as_deref().unwrap_or_default();
    set.iter()
        .filter(|m| m.version.is_repeatable())
        .find(|m| flyway_description(&m.name) == flyway_description(description))
        .map(|m| &**m)
        .ok_or_else(|| AdoptRefusal::NotInSet {
            tool: SetFormat::Flyway,
            version: unknown_repeatable_key(row),
        })
}

/// A name for a Flyway repeatable row the set has no file for: `R__` and Flyway's
/// description (`R__Create views`).
fn unknown_repeatable_key(row: &ForeignRow) -> String {
    let description = row.name.as_deref().unwrap_or_default();
    format!("{}{description}", crate::model::REPEATABLE_PREFIX)
}

/// A refinery migration's version: always an integer (its reader refuses others).
fn refinery_version(m: &Migration) -> i64 {
    m.version.as_i64().unwrap_or_default()
}

/// Compares the tool's recorded checksum, where it keeps one, with the file's. sqlx and
/// refinery hash the file's text as it is, while Avocet holds it with CRLF turned into LF:
/// the text is also tried with every LF as CRLF, the file as a Windows checkout wrote it.
/// Flyway's CRC-32 reads lines without their terminators, so line endings never matter.
fn check_checksum(tool: SetFormat, m: &Migration, row: &ForeignRow) -> Result<(), AdoptRefusal> {
    let Some(recorded) = row.checksum.as_deref().map(str::trim) else {
        return Ok(());
    };
    let text = &m.up.sql;
    let same = |text: &str| match tool {
        SetFormat::Sqlx => recorded.eq_ignore_ascii_case(&sqlx_checksum(text)),
        SetFormat::Flyway => recorded == flyway_checksum(text).to_string(),
        SetFormat::Refinery => [false, true].iter().any(|wide| {
            recorded == refinery_checksum(&m.name, refinery_version(m), text, *wide).to_string()
        }),
        _ => true,
    };
    let crlf = || matches!(tool, SetFormat::Sqlx | SetFormat::Refinery) && text.contains('\n');
    let matches = same(text) || (crlf() && same(&text.replace('\n', "\r\n")));
    if matches {
        return Ok(());
    }
    let file = match tool {
        SetFormat::Sqlx => sqlx_checksum(text),
        SetFormat::Flyway => flyway_checksum(text).to_string(),
        _ => refinery_checksum(&m.name, refinery_version(m), text, false).to_string(),
    };
    Err(AdoptRefusal::Checksum {
        tool,
        version: m.version.clone(),
        name: m.name.clone(),
        recorded: recorded.to_owned(),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{catalog::parse_script, model::DialectKind};

    fn set(versions: &[&str]) -> MigrationSet {
        let migrations = versions
            .iter()
            .map(|v| Migration {
                version: v.parse().unwrap(),
                name: format!("m{v}"),
                up: parse_script("CREATE TABLE a (id int);\nSELECT 1;\n", DialectKind::Sqlite)
                    .unwrap(),
                down: None,
                unordered: false,
            })
            .collect();
        MigrationSet::new(migrations).unwrap()
    }

    fn row(version: &str, checksum: Option<String>) -> ForeignRow {
        ForeignRow {
            version: Some(version.into()),
            name: None,
            ok: true,
            checksum,
            kind: None,
        }
    }

    #[test]
    fn a_file_sqlx_ran_with_crlf_line_endings_is_the_same_file() {
        let set = set(&["1"]);
        let crlf = sqlx_checksum("CREATE TABLE a (id int);\r\nSELECT 1;\r\n");
        let adopted = adoption(&set, SetFormat::Sqlx, &[row("1", Some(crlf))]);
        assert_eq!(adopted.unwrap(), [Version::from(1)]);
        let other = sqlx_checksum("CREATE TABLE b (id int);\r\nSELECT 1;\r\n");
        let refused = adoption(&set, SetFormat::Sqlx, &[row("1", Some(other))]);
        assert!(
            matches!(refused, Err(AdoptRefusal::Checksum { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn flyway_rows_name_dotted_versions_as_flyway_writes_them() {
        let set = set(&["1", "1.2", "1.10"]);
        let sum = Some(flyway_checksum("CREATE TABLE a (id int);\nSELECT 1;\n").to_string());
        let rows = [row("1", sum.clone()), row("1.2", sum)];
        let adopted: Vec<String> = adoption(&set, SetFormat::Flyway, &rows)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(adopted, ["1", "1.2"]);
    }

    #[test]
    fn a_flyway_baseline_migration_that_ran_stands_for_every_version_up_to_it() {
        let file = "CREATE TABLE a (id int);\nSELECT 1;\n";
        let baseline = set(&["1.20"]).iter().map(|m| (**m).clone()).collect();
        let set = set(&["1.0.1", "1.12", "1.20.1"])
            .with_baselines(baseline)
            .unwrap();
        let sum = Some(flyway_checksum(file).to_string());
        let ran = ForeignRow {
            kind: Some("SQL_BASELINE".into()),
            ..row("1.20", sum.clone())
        };
        let adopted: Vec<String> = adoption(&set, SetFormat::Flyway, std::slice::from_ref(&ran))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(adopted, ["1.0.1", "1.12", "1.20"]);
        let changed = ForeignRow {
            checksum: Some("1".into()),
            ..ran
        };
        let refused = adoption(&set, SetFormat::Flyway, &[changed]);
        assert!(
            matches!(refused, Err(AdoptRefusal::Checksum { .. })),
            "{refused:?}"
        );
        let unknown = ForeignRow {
            kind: Some("SQL_BASELINE".into()),
            ..row("1.12", sum)
        };
        let refused = adoption(&set, SetFormat::Flyway, &[unknown]);
        assert!(
            matches!(refused, Err(AdoptRefusal::NotInSet { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn flyway_repeatables_are_adopted_while_their_newest_run_is_the_file() {
        let mut set: Vec<Migration> = set(&["1", "R__Create_views"])
            .iter()
            .map(|m| (**m).clone())
            .collect();
        set[1].name = "Create_views".into();
        let set = MigrationSet::new(set).unwrap();
        let sum = |text: &str| Some(flyway_checksum(text).to_string());
        let file = "CREATE TABLE a (id int);\nSELECT 1;\n";
        let run = |checksum| ForeignRow {
            version: None,
            name: Some("Create views".into()),
            ok: true,
            checksum,
            kind: Some("SQL".into()),
        };
        let adopted = |rows: &[ForeignRow]| -> Vec<String> {
            let versions = adoption(&set, SetFormat::Flyway, rows).unwrap();
            versions.iter().map(ToString::to_string).collect()
        };
        let v1 = row("1", sum(file));
        let (old, new) = (run(sum("SELECT 0;")), run(sum(file)));
        assert_eq!(
            adopted(&[v1.clone(), old.clone(), new.clone()]),
            ["1", "R__Create_views"]
        );
        // The file changed since its newest run: left pending, to run again.
        assert_eq!(adopted(&[v1.clone(), new, old]), ["1"]);
        let gone = ForeignRow {
            name: Some("Dropped views".into()),
            ..run(sum(file))
        };
        let refused = adoption(&set, SetFormat::Flyway, &[v1.clone(), gone]);
        assert!(
            matches!(&refused, Err(AdoptRefusal::NotInSet { version, .. }) if version == "R__Dropped views"),
            "{refused:?}"
        );
        let failed = ForeignRow {
            ok: false,
            ..run(sum(file))
        };
        let refused = adoption(&set, SetFormat::Flyway, &[v1, failed]);
        assert!(
            matches!(&refused, Err(AdoptRefusal::Unfinished { version, .. }) if version == "R__Create_views"),
            "{refused:?}"
        );
    }
}
