//! `${name}` placeholders on real PostgreSQL schema tenants: `${tenant_id}`, `${schema}`,
//! `${fleet}` and `[fleets.NAME.vars]` are filled per tenant, quoted for where they land;
//! an unknown one is a plan error with its line and nothing runs; the checksum is the file's.

use std::time::Duration;

use anyhow::{Context, ensure};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, pb};

#[tokio::test(flavor = "multi_thread")]
async fn placeholders_are_filled_per_tenant_and_quoted() -> anyhow::Result<()> {
    let fleet = Fleet::postgres_schemas(2).await?;
    let set = MigrationCopy::empty()?;
    set.write(
        "0001_settings.up.sql",
        "CREATE TABLE settings (k text, v text);",
    )?;
    set.write(
        "0002_seed.up.sql",
        "-- seeded per tenant\n\
         INSERT INTO settings VALUES ('tenant', '${tenant_id}'), ('fleet', '${fleet}'),\n\
         ('region', '${region}'), ('schema', '${schema}');",
    )?;
    set.write(
        "0003_index.up.sql",
        "CREATE INDEX settings_k_${tenant_id} ON ${schema}.settings (k);",
    )?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(5))?;
    let f = config.fleets.get_mut(FLEET).context("fleet")?;
    f.vars.insert("region".into(), "eu-'west".into());
    let daemon = TestDaemon::start_with(config).await?;
    let run = daemon.apply_all().await?;
    ensure!(
        run.finished().context("finished")?.succeeded == 2,
        "{run:?}"
    );
    for (i, t) in fleet.tenants.iter().enumerate() {
        let schema = t.schema.clone().context("schema")?;
        let value = |k: &str| format!("SELECT v FROM {schema}.settings WHERE k = '{k}'");
        ensure!(fleet.scalar(i, &value("tenant")).await?.as_deref() == Some(t.id.as_str()));
        ensure!(fleet.scalar(i, &value("fleet")).await?.as_deref() == Some(FLEET));
        ensure!(fleet.scalar(i, &value("region")).await?.as_deref() == Some("eu-'west"));
        ensure!(fleet.scalar(i, &value("schema")).await?.as_deref() == Some(schema.as_str()));
        let index = fleet
            .scalar(
                i,
                &format!(
                    "SELECT indexname::text FROM pg_indexes WHERE schemaname = '{schema}' \
                     AND tablename = 'settings'"
                ),
            )
            .await?;
        ensure!(index == Some(format!("settings_k_{}", t.id)), "{index:?}");
    }
    // The recorded checksum is the file's as written, placeholders and all.
    let file = set.read("0002_seed.up.sql")?;
    let checksum = avocet_daemon::parse_script(&file, avocet_daemon::DialectKind::Postgres)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .checksum;
    let schema0 = fleet.tenants[0].schema.clone().context("schema")?;
    let recorded = fleet
        .scalar(
            0,
            &format!("SELECT checksum FROM {schema0}.avocet_migrations WHERE version = 2"),
        )
        .await?;
    ensure!(
        recorded.as_deref() == Some(checksum.as_str()),
        "{recorded:?} vs {checksum}"
    );

    // An unknown placeholder: a plan error naming the version, the script and the line.
    set.write("0004_typo.up.sql", "SELECT 1;\nSELECT '${regoin}';")?;
    let plan = daemon.plan().await?;
    let errors: Vec<&pb::Diagnostic> = plan
        .tenants
        .iter()
        .flat_map(|t| t.diagnostics.iter())
        .filter(|d| d.code == "placeholder")
        .collect();
    ensure!(errors.len() == 2, "{plan:?}");
    ensure!(
        errors[0]
            .message
            .contains("version 4 (typo), up script: line 2: unknown placeholder ${regoin}"),
        "{}",
        errors[0].message
    );
    let refused = daemon.apply_all().await?;
    ensure!(
        refused.finished().context("finished")?.failed == 2,
        "{refused:?}"
    );
    ensure!(refused.tenants().all(|t| t.migrations_run == 0));
    daemon.stop().await
}
