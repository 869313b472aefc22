//! Fleet schema census helpers: the census and an export through the client, and the
//! hand-made changes an operator makes to tenants behind Avocet's back (an extra index, a
//! dropped default, a changed view, a restore from the database's own dump tool).

use std::process::Command;

use anyhow::{Context, bail, ensure};
use avocet_daemon::DialectKind;

use crate::{FLEET, Fleet, TestDaemon, pb, sample_dir};

/// `Fleet.Census` of the whole fleet [`FLEET`], read to its result.
pub async fn census(daemon: &TestDaemon) -> anyhow::Result<pb::CensusResult> {
    let req = pb::CensusRequest {
        fleet: FLEET.into(),
        ..Default::default()
    };
    let mut reports = 0;
    let result = daemon.client().census(req, |_, _| reports += 1).await?;
    ensure!(reports > 0, "the census sent no progress");
    Ok(result)
}

/// Tenant `tenant`'s canonical model as JSON (`avocet census --export`).
pub async fn export(daemon: &TestDaemon, tenant: &str) -> anyhow::Result<String> {
    let req = pb::CensusRequest {
        fleet: FLEET.into(),
        focus_tenant: tenant.into(),
        export: true,
        ..Default::default()
    };
    Ok(daemon.client().census(req, |_, _| {}).await?.model_json)
}

/// An index an operator adds by hand on tenant `i`.
pub async fn add_index(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    fleet
        .exec(i, "CREATE INDEX census_extra_idx ON users (created_at)")
        .await
}

/// `api_keys.scopes` loses its default on tenant `i` (SQLite: the table rebuilt without
/// it, as SQLite's documentation says to change a column, its indexes made again).
pub async fn drop_default(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    match fleet.dialect {
        DialectKind::Sqlite => {
            let table = fleet
                .scalar(i, "SELECT sql FROM sqlite_schema WHERE name = 'api_keys'")
                .await?
                .context("no api_keys")?;
            let rebuilt =
                table
                    .replace("DEFAULT 'read'", "")
                    .replacen("api_keys", "api_keys_new", 1);
            ensure!(rebuilt != table, "no default to drop in {table}");
            let indexes = fleet
                .scalar(
                    i,
                    "SELECT group_concat(sql, ';') FROM sqlite_schema \
                     WHERE tbl_name = 'api_keys' AND type = 'index' AND sql IS NOT NULL",
                )
                .await?
                .unwrap_or_default();
            let script = format!(
                "PRAGMA foreign_keys = OFF; BEGIN; {rebuilt}; \
                 INSERT INTO api_keys_new SELECT * FROM api_keys; DROP TABLE api_keys; \
                 ALTER TABLE api_keys_new RENAME TO api_keys; {indexes}; COMMIT;"
            );
            fleet.exec(i, &script).await
        }
        _ => {
            fleet
                .exec(i, "ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT")
                .await
        }
    }
}

/// The view `account_revenue` made again with one column renamed on tenant `i`.
pub async fn change_view(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    let dir = sample_dir(fleet.dialect);
    let file = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("0011_") && name.ends_with(".up.sql")
        })
        .context("no view migration")?;
    let view = std::fs::read_to_string(file)?.replace("AS paid_revenue", "AS paid");
    fleet
        .exec(i, &format!("DROP VIEW account_revenue; {view}"))
        .await
}

/// `ANALYZE`, `VACUUM FULL` (SQLite: `VACUUM`; MariaDB: `OPTIMIZE TABLE`) and `REINDEX` on
/// tenant `i`: maintenance that must not move a fingerprint.
pub async fn maintain(fleet: &Fleet, i: usize) -> anyhow::Result<()> {
    let sql = match fleet.dialect {
        DialectKind::Postgres => format!(
            "ANALYZE; VACUUM FULL; REINDEX DATABASE {}",
            fleet.databases()[i]
        ),
        DialectKind::Mysql => {
            "ANALYZE TABLE users, api_keys; OPTIMIZE TABLE users, api_keys".into()
        }
        DialectKind::Sqlite => "ANALYZE; VACUUM; REINDEX".into(),
    };
    // One statement a request: PostgreSQL runs `VACUUM` outside any transaction block.
    for statement in sql.split("; ") {
        fleet.exec(i, statement).await?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Tenant `to` made a restore of tenant `from` with the database's own tools: its database
/// dropped, created empty and filled from `pg_dump -Fc`/`pg_restore`, `mariadb-dump`, or
/// SQLite's `.backup`. Run while no daemon holds sessions on `to`.
pub async fn restore(fleet: &Fleet, from: usize, to: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    match fleet.dialect {
        DialectKind::Sqlite => {
            let file = |i: usize| {
                let dsn = &fleet.tenants[i].dsn;
                dsn["sqlite://".len()..]
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            run(Command::new("sqlite3")
                .arg(file(from))
                .arg(format!(".backup '{}'", file(to))))
        }
        dialect => {
            let (src, dst) = (&fleet.databases()[from], &fleet.databases()[to]);
            let dump = dir.path().join("dump");
            let mut admin = crate::fixture::admin(dialect).await?;
            let force = match dialect {
                DialectKind::Postgres => " WITH (FORCE)",
                _ => "",
            };
            sqlx::raw_sql(&format!("DROP DATABASE {dst}{force}"))
                .execute(&mut admin)
                .await?;
            sqlx::raw_sql(&format!("CREATE DATABASE {dst}"))
                .execute(&mut admin)
                .await?;
            if dialect == DialectKind::Postgres {
                let args = ["-h", "127.0.0.1", "-U", "postgres"];
                run(Command::new("pg_dump")
                    .args(args)
                    .args(["-Fc", "-f"])
                    .arg(&dump)
                    .arg(src))?;
                run(Command::new("pg_restore")
                    .args(args)
                    .args(["-d", dst])
                    .arg(&dump))
            } else {
                let args = ["-h", "127.0.0.1", "-u", "root"];
                run(Command::new("mariadb-dump")
                    .args(args)
                    .arg(format!("--result-file={}", dump.display()))
                    .args(["--routines", "--triggers", src]))?;
                run(Command::new("sh").arg("-c").arg(format!(
                    "mariadb -h 127.0.0.1 -u root {dst} < {}",
                    dump.display()
                )))
            }
        }
    }
}
