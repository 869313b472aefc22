//! Adopting databases another tool manages (issue 10): each tool's history table is created
//! with the DDL the tool itself runs and filled as the tool fills it after applying two of
//! three migrations (checksums computed here, from each tool's published algorithm or its
//! own test vectors); `adopt` records those two in Avocet's history without running them,
//! leaves the tool's table untouched, and the next apply runs only the third. An unfinished
//! (failed or dirty) record, or a file changed since the tool ran it, is refused and
//! writes nothing. Flyway's repeatables are adopted while their newest run is the file.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_client::Client;
use avocet_daemon::DialectKind;
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, VersionField, pb};
use sha2::{Digest, Sha384};

/// The three migrations, as (file text, table it creates).
const SCRIPTS: [(&str, &str); 3] = [
    (
        "CREATE TABLE persons (\n    id int,\n    name varchar(255),\n    city varchar(255)\n);\n",
        "persons",
    ),
    (
        "CREATE TABLE cars (\n    id int,\n    name varchar(255)\n);\n",
        "cars",
    ),
    ("CREATE TABLE toys (id int);\n", "toys"),
];

/// Flyway's CRC-32 over the text's lines without their terminators (ChecksumCalculator).
fn flyway_crc(text: &str) -> i32 {
    let mut crc = crc32fast::Hasher::new();
    for line in text.lines() {
        crc.update(line.as_bytes());
    }
    crc.finalize() as i32
}

fn sqlx_sha384(text: &str) -> String {
    hex::encode(Sha384::digest(text.as_bytes()))
}

fn blob(d: DialectKind, hex: &str) -> String {
    match d {
        DialectKind::Postgres => format!("decode('{hex}', 'hex')"),
        DialectKind::Mysql => format!("UNHEX('{hex}')"),
        DialectKind::Sqlite => format!("X'{hex}'"),
    }
}

/// `flyway_schema_history` as Flyway creates it on `d` (its `createMetaDataTable.sql`).
fn flyway_ddl(d: DialectKind) -> &'static str {
    match d {
        DialectKind::Postgres => {
            "CREATE TABLE \"flyway_schema_history\" (\"installed_rank\" INT NOT NULL, \
             \"version\" VARCHAR(50), \"description\" VARCHAR(200) NOT NULL, \
             \"type\" VARCHAR(20) NOT NULL, \"script\" VARCHAR(1000) NOT NULL, \
             \"checksum\" INTEGER, \"installed_by\" VARCHAR(100) NOT NULL, \
             \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(), \
             \"execution_time\" INTEGER NOT NULL, \"success\" BOOLEAN NOT NULL);\n\
             ALTER TABLE \"flyway_schema_history\" ADD CONSTRAINT \
             \"flyway_schema_history_pk\" PRIMARY KEY (\"installed_rank\");\n\
             CREATE INDEX \"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\");"
        }
        DialectKind::Mysql => {
            "CREATE TABLE `flyway_schema_history` (`installed_rank` INT NOT NULL, \
             `version` VARCHAR(50), `description` VARCHAR(200) NOT NULL, \
             `type` VARCHAR(20) NOT NULL, `script` VARCHAR(1000) NOT NULL, \
             `checksum` INT, `installed_by` VARCHAR(100) NOT NULL, \
             `installed_on` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             `execution_time` INT NOT NULL, `success` BOOL NOT NULL, \
             CONSTRAINT `flyway_schema_history_pk` PRIMARY KEY (`installed_rank`));\n\
             CREATE INDEX `flyway_schema_history_s_idx` ON `flyway_schema_history` (`success`);"
        }
        DialectKind::Sqlite => {
            "CREATE TABLE \"main\".\"flyway_schema_history\" (\"installed_rank\" INT NOT NULL PRIMARY KEY, \
             \"version\" VARCHAR(50), \"description\" VARCHAR(200) NOT NULL, \
             \"type\" VARCHAR(20) NOT NULL, \"script\" VARCHAR(1000) NOT NULL, \
             \"checksum\" INT, \"installed_by\" VARCHAR(100) NOT NULL, \
             \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')), \
             \"execution_time\" INT NOT NULL, \"success\" BOOLEAN NOT NULL);\n\
             CREATE INDEX \"main\".\"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\");"
        }
    }
}

/// One tool: its files for [`SCRIPTS`], and the SQL that leaves its history table as the
/// tool does after applying the first two (`finished = false`: the second left unfinished).
struct Tool {
    name: &'static str,
    files: fn(&MigrationCopy) -> anyhow::Result<()>,
    versions: [i64; 3],
    history: fn(DialectKind, bool) -> String,
    table: &'static str,
}

fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "sqlx",
            files: |set| {
                for (i, (text, table)) in SCRIPTS.iter().enumerate() {
                    set.write(&format!("000{}_{table}.sql", i + 1), text)?;
                }
                Ok(())
            },
            versions: [1, 2, 3],
            history: |d, finished| {
                let ddl = match d {
                    DialectKind::Postgres => {
                        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, \
                         description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), \
                         success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);"
                    }
                    _ => {
                        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, \
                         description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
                         success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);"
                    }
                };
                let row = |v: usize, ok: bool| {
                    format!(
                        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                         execution_time) VALUES ({v}, '{}', {ok}, {}, 1000);",
                        SCRIPTS[v - 1].1,
                        blob(d, &sqlx_sha384(SCRIPTS[v - 1].0))
                    )
                };
                format!("{ddl}\n{}\n{}", row(1, true), row(2, finished))
            },
            table: "_sqlx_migrations",
        },
        Tool {
            name: "golang-migrate",
            files: |set| {
                for (i, (text, table)) in SCRIPTS.iter().enumerate() {
                    set.write(&format!("{}_{table}.up.sql", i + 1), text)?;
                    set.write(
                        &format!("{}_{table}.down.sql", i + 1),
                        &format!("DROP TABLE {table};"),
                    )?;
                }
                Ok(())
            },
            versions: [1, 2, 3],
            history: |d, finished| {
                let ddl = match d {
                    DialectKind::Sqlite => {
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool);\n\
                         CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);"
                    }
                    _ => {
                        "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);"
                    }
                };
                format!(
                    "{ddl}\nINSERT INTO schema_migrations (version, dirty) VALUES (2, {});",
                    !finished
                )
            },
            table: "schema_migrations",
        },
        Tool {
            name: "diesel",
            files: |set| {
                for (dir, (text, table)) in [
                    "2024-03-13-170000",
                    "2024-03-14-090000",
                    "2024-03-15-100000",
                ]
                .iter()
                .zip(SCRIPTS)
                {
                    std::fs::create_dir(set.path().join(format!("{dir}_{table}")))?;
                    set.write(&format!("{dir}_{table}/up.sql"), text)?;
                    set.write(
                        &format!("{dir}_{table}/down.sql"),
                        &format!("DROP TABLE {table};"),
                    )?;
                }
                Ok(())
            },
            versions: [20240313170000, 20240314090000, 20240315100000],
            history: |_, _| {
                "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n\
                 version VARCHAR(50) PRIMARY KEY NOT NULL,\n\
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\n\
                 INSERT INTO __diesel_schema_migrations (version) VALUES ('20240313170000');\n\
                 INSERT INTO __diesel_schema_migrations (version) VALUES ('20240314090000');"
                    .into()
            },
            table: "__diesel_schema_migrations",
        },
        Tool {
            name: "dbmate",
            files: |set| {
                for (v, (text, table)) in ["20240313170000", "20240314090000", "20240315100000"]
                    .iter()
                    .zip(SCRIPTS)
                {
                    set.write(
                        &format!("{v}_{table}.sql"),
                        &format!("-- migrate:up\n{text}\n-- migrate:down\nDROP TABLE {table};\n"),
                    )?;
                }
                Ok(())
            },
            versions: [20240313170000, 20240314090000, 20240315100000],
            history: |d, _| {
                let ty = match d {
                    DialectKind::Postgres => "varchar",
                    _ => "varchar(128)",
                };
                format!(
                    "create table if not exists schema_migrations (version {ty} primary key);\n\
                     insert into schema_migrations (version) values ('20240313170000');\n\
                     insert into schema_migrations (version) values ('20240314090000');"
                )
            },
            table: "schema_migrations",
        },
        Tool {
            name: "flyway",
            files: |set| {
                for (i, (text, table)) in SCRIPTS.iter().enumerate() {
                    set.write(&format!("V{}__Create_{table}.sql", i + 1), text)?;
                }
                Ok(())
            },
            versions: [1, 2, 3],
            history: |d, finished| {
                let ddl = flyway_ddl(d);
                let row = |v: usize, ok: bool| {
                    let table = SCRIPTS[v - 1].1;
                    format!(
                        "INSERT INTO flyway_schema_history (installed_rank, version, description, \
                         type, script, checksum, installed_by, execution_time, success) VALUES \
                         ({v}, '{v}', 'Create {table}', 'SQL', 'V{v}__Create_{table}.sql', {}, \
                         'ops', 12, {ok});",
                        flyway_crc(SCRIPTS[v - 1].0)
                    )
                };
                format!("{ddl}\n{}\n{}", row(1, true), row(2, finished))
            },
            table: "flyway_schema_history",
        },
        Tool {
            name: "refinery",
            files: |set| {
                set.write("V1__initial.sql", SCRIPTS[0].0)?;
                set.write("V2__add_cars_table.sql", SCRIPTS[1].0)?;
                set.write("V3__toys.sql", SCRIPTS[2].0)?;
                Ok(())
            },
            versions: [1, 2, 3],
            // The checksums refinery's own tests assert for these two files
            // (refinery/tests/postgres.rs, migrations_broken/V1__initial.sql and
            // V2__add_cars_table.sql, whose texts SCRIPTS holds byte for byte).
            history: |_, _| {
                "CREATE TABLE IF NOT EXISTS refinery_schema_history(\n\
                 version int4 PRIMARY KEY,\n name VARCHAR(255),\n applied_on VARCHAR(255),\n\
                 checksum VARCHAR(255));\n\
                 INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES \
                 (1, 'initial', '2024-05-04T09:02:41.123456789Z', '2959965718684201605');\n\
                 INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES \
                 (2, 'add_cars_table', '2024-05-04T09:02:41.223456789Z', '8238603820526370208');"
                    .into()
            },
            table: "refinery_schema_history",
        },
    ]
}

async fn adopt(c: &mut Client, tool: &str, tenant: &str) -> anyhow::Result<pb::BaselineResult> {
    let resp = c
        .baseline(pb::BaselineRequest {
            fleet: FLEET.into(),
            selector: avocet_tests::only(&[tenant]),
            adopt_from: tool.into(),
            ..Default::default()
        })
        .await?;
    resp.tenants.into_iter().next().context("one tenant")
}

async fn count(fleet: &Fleet, i: usize, table: &str) -> anyhow::Result<Option<String>> {
    let text = match fleet.dialect {
        DialectKind::Mysql => "CHAR",
        _ => "TEXT",
    };
    fleet
        .scalar(i, &format!("SELECT CAST(COUNT(*) AS {text}) FROM {table}"))
        .await
}

/// t00: managed by the tool, adopted, then applied. t01: its tool's second migration
/// unfinished (or, for tools without such a state, the first file edited since): refused.
async fn adopt_then_apply(fleet: Fleet, tool: &Tool) -> anyhow::Result<()> {
    let d = fleet.dialect;
    let context = format!("{} on {d}", tool.name);
    let set = MigrationCopy::empty()?;
    (tool.files)(&set)?;
    for i in 0..2 {
        fleet
            .exec(i, &format!("{}{}", SCRIPTS[0].0, SCRIPTS[1].0))
            .await?;
        fleet.exec(i, &(tool.history)(d, i == 0)).await?;
    }
    let before = count(&fleet, 0, tool.table).await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();

    let got = adopt(&mut c, tool.name, "t00").await?;
    ensure!(
        got.error.is_empty() && got.baselined == 2,
        "{context}: {got:?}"
    );
    // A Flyway-layout set (refinery's without its directive reads as one) keeps its
    // history's versions as text.
    let history = fleet.history_text(0).await?;
    let expected: Vec<String> = tool.versions[..2].iter().map(ToString::to_string).collect();
    ensure!(
        history.iter().map(|h| h.0.clone()).collect::<Vec<_>>() == expected
            && history.iter().all(|h| h.1 == "applied"),
        "{context}: {history:?}"
    );
    let by = fleet
        .scalar(0, "SELECT applied_by FROM avocet_migrations WHERE version = (SELECT MIN(version) FROM avocet_migrations)")
        .await?
        .unwrap_or_default();
    ensure!(by.starts_with(tool.name), "{context}: applied_by {by:?}");
    ensure!(
        count(&fleet, 0, tool.table).await? == before,
        "{context}: the tool's table changed"
    );

    // t01: unfinished where the tool has such a state; else a file changed since it ran.
    let has_state = matches!(tool.name, "sqlx" | "golang-migrate" | "flyway");
    let has_checksum = matches!(tool.name, "sqlx" | "flyway" | "refinery");
    if has_state {
        let refused = adopt(&mut c, tool.name, "t01").await?;
        ensure!(
            refused.baselined == 0 && refused.error.contains("unfinished"),
            "{context}: {refused:?}"
        );
        ensure!(
            fleet.history_text(1).await.is_err(),
            "{context}: a refused adoption created Avocet's history table"
        );
    }
    if has_checksum {
        let files: Vec<_> = std::fs::read_dir(set.path())?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with("V1__") || f.starts_with("0001_"))
            .collect();
        let first = files.first().context("the first file")?.clone();
        set.write(&first, &format!("-- edited\n{}", SCRIPTS[0].0))?;
        // A fresh tenant state for t01: finished this time, so only the checksum is wrong.
        fleet.exec(1, &format!("DROP TABLE {}", tool.table)).await?;
        fleet.exec(1, &(tool.history)(d, true)).await?;
        let refused = adopt(&mut c, tool.name, "t01").await?;
        ensure!(
            refused.baselined == 0 && refused.error.contains("changed since"),
            "{context}: {refused:?}"
        );
        set.write(&first, SCRIPTS[0].0)?;
    }

    let run = daemon.apply(pb::ApplyRequest {
        fleet: FLEET.into(),
        selector: avocet_tests::only(&["t00"]),
        ..Default::default()
    });
    let run = run.await?;
    let finished = run.finished().context("finished")?;
    ensure!(
        finished.failed == 0 && finished.migrations_run == 1,
        "{context}: only the third runs: {run:?}"
    );
    let tables = fleet.objects(0, "BASE TABLE").await?;
    ensure!(tables.contains("toys"), "{context}: {tables:?}");
    daemon.stop().await
}

async fn every_dialect(name: &str) -> anyhow::Result<()> {
    let tool = tools()
        .into_iter()
        .find(|t| t.name == name)
        .context("tool")?;
    adopt_then_apply(Fleet::sqlite(2).await?, &tool).await?;
    adopt_then_apply(Fleet::postgres(2).await?, &tool).await?;
    adopt_then_apply(Fleet::mysql(2).await?, &tool).await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_from_sqlx() -> anyhow::Result<()> {
    every_dialect("sqlx").await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_from_golang_migrate() -> anyhow::Result<()> {
    every_dialect("golang-migrate").await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_from_diesel() -> anyhow::Result<()> {
    every_dialect("diesel").await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_from_dbmate() -> anyhow::Result<()> {
    every_dialect("dbmate").await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_from_flyway() -> anyhow::Result<()> {
    every_dialect("flyway").await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_from_refinery() -> anyhow::Result<()> {
    every_dialect("refinery").await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopting_from_an_unknown_tool_is_invalid_and_touches_nothing() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let set = MigrationCopy::empty()?;
    (tools()[0].files)(&set)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();
    for tool in ["liquibase", "auto", "SQLX"] {
        let err = adopt(&mut c, tool, "t00").await.unwrap_err();
        let status = err
            .downcast_ref::<avocet_client::ClientError>()
            .and_then(|e| e.code());
        ensure!(
            status == Some(tonic::Code::InvalidArgument),
            "{tool}: {err:#}"
        );
    }
    // No tool table on the tenant: refused per tenant, nothing created.
    let got = adopt(&mut c, "flyway", "t00").await?;
    ensure!(
        got.baselined == 0 && got.error.contains("no flyway history table"),
        "{got:?}"
    );
    ensure!(
        fleet.history_text(0).await.is_err(),
        "Avocet's history table was created"
    );
    daemon.stop().await
}

/// Flyway's repeatables: a row without a version per run, by description. The one whose
/// newest run is its file is adopted; the one edited since runs again at the next apply,
/// alone, as Flyway would run it.
async fn adopt_repeatables(fleet: Fleet) -> anyhow::Result<()> {
    let context = format!("Flyway repeatables on {}", fleet.dialect);
    let view = |name: &str, table: &str| {
        format!("DROP VIEW IF EXISTS {name};\nCREATE VIEW {name} AS SELECT id FROM {table};\n")
    };
    let (persons, cars_then) = (view("persons_ids", "persons"), view("car_ids", "persons"));
    let cars_now = view("car_ids", "cars");
    let set = MigrationCopy::empty()?;
    set.write("V1__Create_persons.sql", SCRIPTS[0].0)?;
    set.write("V2__Create_cars.sql", SCRIPTS[1].0)?;
    set.write("R__Persons_view.sql", &persons)?;
    set.write("R__Car_view.sql", &cars_now)?;
    let row = |rank: usize, version: &str, description: &str, script: &str, text: &str| {
        format!(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, \
             script, checksum, installed_by, execution_time, success) VALUES ({rank}, \
             {version}, '{description}', 'SQL', '{script}', {}, 'ops', 3, true);",
            flyway_crc(text)
        )
    };
    let history = [
        flyway_ddl(fleet.dialect).to_owned(),
        row(
            1,
            "'1'",
            "Create persons",
            "V1__Create_persons.sql",
            SCRIPTS[0].0,
        ),
        row(2, "'2'", "Create cars", "V2__Create_cars.sql", SCRIPTS[1].0),
        row(3, "NULL", "Persons view", "R__Persons_view.sql", &persons),
        row(4, "NULL", "Car view", "R__Car_view.sql", &cars_then),
    ];
    let state = format!("{}{}{persons}{cars_then}", SCRIPTS[0].0, SCRIPTS[1].0);
    fleet.exec(0, &state).await?;
    fleet.exec(0, &history.join("\n")).await?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let mut c = daemon.client();

    let got = adopt(&mut c, "flyway", "t00").await?;
    ensure!(
        got.error.is_empty() && got.baselined == 3,
        "{context}: {got:?}"
    );
    let stored: Vec<String> = fleet
        .history_text(0)
        .await?
        .into_iter()
        .map(|h| h.0)
        .collect();
    ensure!(
        stored == ["1", "2", "R__Persons_view"],
        "{context}: {stored:?}"
    );

    let run = daemon
        .apply(pb::ApplyRequest {
            fleet: FLEET.into(),
            selector: avocet_tests::only(&["t00"]),
            ..Default::default()
        })
        .await?;
    let ran: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::MigrationStarted(m)) => Some(m.version.text()),
            _ => None,
        })
        .collect();
    ensure!(ran == ["R__Car_view"], "{context}: {run:?}");
    ensure!(
        run.finished().context("finished")?.failed == 0,
        "{context}: {run:?}"
    );
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_flyway_repeatables() -> anyhow::Result<()> {
    adopt_repeatables(Fleet::sqlite(1).await?).await?;
    adopt_repeatables(Fleet::postgres(1).await?).await?;
    adopt_repeatables(Fleet::mysql(1).await?).await
}
