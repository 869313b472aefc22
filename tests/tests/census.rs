//! Fleet schema census on real databases: a fleet migrated by Avocet, then changed by hand
//! on 11 tenants (4 extra indexes, 4 dropped defaults, 3 changed views), is reported as
//! exactly those three drift classes, each naming the object; a tenant restored with the
//! database's own dump tool is in the expected class; fingerprints survive a daemon
//! restart, `ANALYZE`, `VACUUM FULL` and `REINDEX`, and do not depend on the order in which
//! equivalent migration sets created the tables. A PostgreSQL model holds each kind of
//! object, and none of an extension's.

use std::time::Duration;

use avocet_tests::{
    Fleet, MigrationCopy, TestDaemon, VersionField,
    census::{add_index, census, change_view, drop_default, export, maintain, restore},
    pb,
};

const LOCK: Duration = Duration::from_secs(10);

/// `avocet_fleet_schema_drift_tenants{fleet="test"}` as scraped now.
async fn drift_gauge(daemon: &TestDaemon) -> anyhow::Result<f64> {
    let scrape = avocet_tests::scrape(daemon.admin).await?;
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "avocet_fleet_schema_drift_tenants"
                && s.labels.get("fleet") == Some(avocet_tests::FLEET)
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .ok_or_else(|| anyhow::anyhow!("no avocet_fleet_schema_drift_tenants"))
}

/// The class holding `tenant`.
fn class_of<'a>(r: &'a pb::CensusResult, tenant: &str) -> &'a pb::DriftClass {
    r.classes
        .iter()
        .find(|c| c.tenants.iter().any(|t| t == tenant))
        .unwrap_or_else(|| panic!("{tenant} is in no class: {r:#?}"))
}

/// Runs the drift scenario on `fleet` (`n` tenants): tenants 1–4 get an extra index, 5–8
/// lose a default, 9–11 get a changed view, the last is restored from a dump of tenant 0.
async fn drift_classes(fleet: Fleet) -> anyhow::Result<()> {
    let n = fleet.tenants.len();
    let ids = fleet.ids();
    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    let applied = daemon.apply_all().await?;
    assert!(
        applied
            .tenants()
            .all(|t| t.outcome == pb::TenantOutcome::Succeeded as i32),
        "every tenant migrated"
    );
    let clean = census(&daemon).await?;
    assert_eq!(
        clean.classes.len(),
        1,
        "one class before any change: {clean:#?}"
    );
    let fingerprint = clean.classes[0].fingerprint.clone();
    daemon.stop().await?;

    for i in 1..=4 {
        add_index(&fleet, i).await?;
    }
    for i in 5..=8 {
        drop_default(&fleet, i).await?;
    }
    for i in 9..=11 {
        change_view(&fleet, i).await?;
    }
    restore(&fleet, 0, n - 1).await?;

    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    let r = census(&daemon).await?;
    assert_eq!(r.tenants as usize, n);
    assert!(r.unreadable.is_empty(), "{:?}", r.unreadable);
    let expected = class_of(&r, &ids[0]);
    assert!(expected.expected, "the untouched majority is expected");
    assert_eq!(
        expected.fingerprint, fingerprint,
        "unchanged across a restart"
    );
    let mut untouched: Vec<String> = ids[..1].iter().chain(&ids[12..]).cloned().collect();
    untouched.sort();
    let mut got = expected.tenants.clone();
    got.sort();
    assert_eq!(
        got,
        untouched,
        "the restored tenant {} is expected too",
        ids[n - 1]
    );
    let drift: Vec<&pb::DriftClass> = r.classes.iter().filter(|c| !c.expected).collect();
    assert_eq!(drift.len(), 3, "three drift classes: {drift:#?}");
    let check = |range: std::ops::RangeInclusive<usize>, object: &str, change: &str| {
        let class = class_of(&r, &ids[*range.start()]);
        assert!(!class.expected);
        assert_eq!(class.tenants, ids[range].to_vec());
        let lines: Vec<(&str, &str)> = class
            .diff
            .iter()
            .map(|d| (d.object.as_str(), d.change.as_str()))
            .collect();
        assert_eq!(lines, [(object, change)], "{:#?}", class.diff);
    };
    check(1..=4, "index census_extra_idx", "extra");
    check(5..=8, "column api_keys.scopes", "default differs");
    check(9..=11, "view account_revenue", "definition differs");

    // One tenant's diff, as `avocet census --tenant` asks for it.
    let focus = daemon
        .client()
        .census(
            pb::CensusRequest {
                fleet: avocet_tests::FLEET.into(),
                focus_tenant: ids[5].clone(),
                ..Default::default()
            },
            |_, _| {},
        )
        .await?
        .focus
        .expect("the focus tenant's class");
    assert_eq!(focus.tenants, [ids[5].clone()]);
    assert_eq!(focus.diff[0].object, "column api_keys.scopes");

    // Maintenance and a restart move no fingerprint.
    for i in [0, 2, 6, 10] {
        maintain(&fleet, i).await?;
    }
    daemon.stop().await?;
    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    let again = census(&daemon).await?;
    assert_eq!(
        again.classes, r.classes,
        "the same classes after maintenance and a restart"
    );
    daemon.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_drift_classes() -> anyhow::Result<()> {
    drift_classes(Fleet::sqlite(60).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_drift_classes() -> anyhow::Result<()> {
    drift_classes(Fleet::postgres(60).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_drift_classes() -> anyhow::Result<()> {
    drift_classes(Fleet::mysql(60).await?).await
}

/// Two sets that make the same schema in different orders (tables, columns' constraints,
/// an index, a view; spelled with other case and spacing).
fn equivalent_sets() -> anyhow::Result<(MigrationCopy, MigrationCopy)> {
    let (a, b) = (MigrationCopy::empty()?, MigrationCopy::empty()?);
    a.write(
        "0001_orders.up.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL DEFAULT 0 \
         CONSTRAINT orders_total_check CHECK (total >= 0), note TEXT);",
    )?;
    a.write(
        "0002_customers.up.sql",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n\
         CREATE UNIQUE INDEX customers_email_idx ON customers (email);\n\
         CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;",
    )?;
    b.write(
        "0001_customers.up.sql",
        "create table customers (\n  id integer primary key,\n  email text not null\n);\n\
         create unique index customers_email_idx on customers(email);",
    )?;
    b.write(
        "0002_orders.up.sql",
        "create table orders (\n  id integer primary key,\n  total integer not null default 0\n    \
         constraint orders_total_check check (total>=0),\n  note text\n);\n\
         create view big_orders as\n  select id, total\n  from orders\n  where total > 100;",
    )?;
    Ok((a, b))
}

async fn order_does_not_count(a: Fleet, b: Fleet) -> anyhow::Result<()> {
    let (set_a, set_b) = equivalent_sets()?;
    let mut models = Vec::new();
    for (fleet, set) in [(&a, &set_a), (&b, &set_b)] {
        let daemon = TestDaemon::start(fleet, set.path(), LOCK).await?;
        daemon.apply_all().await?;
        models.push(export(&daemon, "t00").await?);
        daemon.stop().await?;
    }
    assert!(models[0].contains("big_orders") && models[0].contains("customers_email_idx"));
    assert_eq!(models[0], models[1], "the same model whatever the order");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_creation_order_does_not_count() -> anyhow::Result<()> {
    order_does_not_count(Fleet::sqlite(1).await?, Fleet::sqlite(1).await?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_creation_order_does_not_count() -> anyhow::Result<()> {
    order_does_not_count(Fleet::postgres(1).await?, Fleet::postgres(1).await?).await
}

/// Schema-per-tenant: each tenant's model is its own schema's, and two schemas made by the
/// same set fingerprint alike although their schema names differ.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_schema_tenants_fingerprint_alike() -> anyhow::Result<()> {
    let fleet = Fleet::postgres_schemas(3).await?;
    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    daemon.apply_all().await?;
    add_index(&fleet, 2).await?;
    let r = census(&daemon).await?;
    assert_eq!(r.classes.len(), 2, "{r:#?}");
    assert_eq!(r.classes[0].tenants, ["s00", "s01"]);
    assert_eq!(r.classes[1].tenants, ["s02"]);
    assert_eq!(r.classes[1].diff[0].object, "index census_extra_idx");
    let model = export(&daemon, "s00").await?;
    assert!(!model.contains("tenant_00"), "no schema name in the model");
    daemon.stop().await?;
    Ok(())
}

/// What a PostgreSQL model holds of each kind of object, read from a schema tenant
/// beside an extension's objects: columns in their table's order (identity, serial,
/// generated, collation, default), an enum's labels in their order (one added `BEFORE`
/// another), sequences (a standalone one and a `SERIAL`'s, not an identity column's), an index's keys, order, `INCLUDE`
/// and predicate, a check, a view, a function and a trigger. The extension's functions
/// and types in the same schema are not the tenant's, so the tenant beside it has the
/// same model.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_model_holds_each_kind_of_object() -> anyhow::Result<()> {
    // A label added to an enum cannot be used in the transaction that added it.
    const ENUM: &str = "CREATE TYPE mood AS ENUM ('sad', 'happy');
        ALTER TYPE mood ADD VALUE 'meh' BEFORE 'happy'";
    const SCHEMA: &str = "CREATE SEQUENCE invoice_numbers START 1000 INCREMENT 10;
        CREATE TABLE people (
            zeta TEXT COLLATE \"C\",
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            serial_no SERIAL,
            alpha mood NOT NULL DEFAULT 'meh',
            doubled INT GENERATED ALWAYS AS (serial_no * 2) STORED,
            CONSTRAINT people_alpha_check CHECK (alpha <> 'sad'));
        CREATE INDEX people_zeta_idx ON people (lower(zeta) DESC) INCLUDE (id)
            WHERE zeta IS NOT NULL;
        CREATE VIEW happy_people AS SELECT id, zeta FROM people WHERE alpha = 'happy';
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER people_touch BEFORE UPDATE ON people
            FOR EACH ROW EXECUTE FUNCTION touch();";
    let fleet = Fleet::postgres_schemas(2).await?;
    fleet
        .exec(
            0,
            "CREATE SCHEMA tenant_00; CREATE EXTENSION citext SCHEMA tenant_00",
        )
        .await?;
    fleet.exec(1, "CREATE SCHEMA tenant_01").await?;
    for i in 0..2 {
        fleet.exec(i, ENUM).await?;
        fleet.exec(i, SCHEMA).await?;
    }
    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    let (beside_extension, alone) = (export(&daemon, "s00").await?, export(&daemon, "s01").await?);
    daemon.stop().await?;
    assert_eq!(
        beside_extension, alone,
        "the extension's objects are not the tenant's"
    );

    let m: avocet_daemon::model::SchemaModel = serde_json::from_str(&alone)?;
    let people = &m.tables["people"];
    let columns: Vec<_> = people.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["zeta", "id", "serial_no", "alpha", "doubled"]);
    assert_eq!(people.columns[0].collation.as_deref(), Some("C"));
    assert_eq!(
        people.columns[1].generated.as_deref(),
        Some("identity always")
    );
    assert_eq!(people.columns[3].default.as_deref(), Some("'meh'::mood"));
    assert_eq!(
        people.columns[4].generated.as_deref(),
        Some("stored (serial_no * 2)")
    );
    assert_eq!(m.enums["mood"], ["sad", "meh", "happy"]);
    assert_eq!(
        m.sequences.keys().collect::<Vec<_>>(),
        ["invoice_numbers", "people_serial_no_seq"]
    );
    assert_eq!(m.sequences["invoice_numbers"].increment, "10");
    let index = &people.indexes["people_zeta_idx"];
    assert_eq!(index.keys, ["lower(zeta) DESC"]);
    assert_eq!(index.include, ["id"]);
    assert_eq!(index.predicate.as_deref(), Some("zeta IS NOT NULL"));
    assert!(people.constraints.contains_key("people_alpha_check"));
    assert!(people.constraints.contains_key("people_pkey"));
    assert!(people.triggers.contains_key("people_touch"));
    assert!(m.views.contains_key("happy_people"));
    assert_eq!(m.functions.keys().collect::<Vec<_>>(), ["touch()"]);
    assert_eq!(m.tables.len(), 1, "{:?}", m.tables.keys());
    Ok(())
}

/// `census_on_apply`: the first tenant to reach a version records its schema as the
/// expected one; a tenant whose schema after the same run differs (an index added by hand
/// before it) gets a `SchemaDrift` warning naming the object, and the census takes the
/// recorded fingerprint as expected (`basis: recorded`).
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_expected_schema_recorded_at_apply() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(3).await?;
    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    let to_15 = pb::ApplyRequest {
        target_version: Some(15.into()),
        ..avocet_tests::request()
    };
    daemon.apply(to_15).await?;
    add_index(&fleet, 2).await?;
    // One tenant at a time, in id order: t00 records version 16's schema first.
    let rest = pb::ApplyRequest {
        strategy: Some(pb::Strategy {
            concurrency: Some(1),
            ..Default::default()
        }),
        ..avocet_tests::request()
    };
    let run = daemon.apply(rest).await?;
    let drift: Vec<&pb::SchemaDrift> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::rollout_event::Kind::SchemaDrift(d)) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(drift.len(), 1, "{drift:#?}");
    assert_eq!(drift[0].tenant, "t02");
    assert_eq!(drift[0].expected_from, "t00");
    assert_eq!(drift[0].version.text(), "16");
    assert_eq!(drift[0].diff[0].object, "index census_extra_idx");
    assert!(
        run.tenants()
            .all(|t| t.outcome == pb::TenantOutcome::Succeeded as i32),
        "a warning, not a failure"
    );
    let r = census(&daemon).await?;
    assert_eq!(r.classes.len(), 2);
    assert!(r.classes[0].expected && r.classes[0].basis == "recorded");
    assert_eq!(r.classes[0].tenants, ["t00", "t01"]);
    assert_eq!(r.classes[0].fingerprint, drift[0].expected_fingerprint);
    assert_eq!(r.classes[1].tenants, ["t02"]);
    // Status and the gauge count the drifted tenant of the last census.
    assert_eq!(daemon.known_status().await?.drifted, 1);
    assert_eq!(drift_gauge(&daemon).await?, 1.0);

    // A kept result younger than --max-age is reused while the history is unchanged: a
    // hand-made change since is seen only by a census that reads again.
    add_index(&fleet, 1).await?;
    let cached = daemon
        .client()
        .census(
            pb::CensusRequest {
                fleet: avocet_tests::FLEET.into(),
                max_age_ms: Some(3_600_000),
                ..Default::default()
            },
            |_, _| {},
        )
        .await?;
    assert_eq!(cached.classes, r.classes, "reused");
    let fresh = census(&daemon).await?;
    assert_eq!(fresh.classes[1].tenants, ["t01", "t02"], "{fresh:#?}");
    assert_eq!(daemon.known_status().await?.drifted, 2);
    assert_eq!(drift_gauge(&daemon).await?, 2.0);
    // A diff of a tenant the fleet does not have is NOT_FOUND, not an empty answer.
    let unknown = daemon
        .client()
        .census(
            pb::CensusRequest {
                fleet: avocet_tests::FLEET.into(),
                focus_tenant: "t99".into(),
                ..Default::default()
            },
            |_, _| {},
        )
        .await
        .expect_err("an unknown tenant");
    assert_eq!(unknown.code(), Some(tonic::Code::NotFound), "{unknown}");
    daemon.stop().await?;
    Ok(())
}

/// `apply --require-expected-schema`: a tenant changed by hand since its version's
/// expected schema was recorded is refused `drifted` with nothing run; the rest apply.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_apply_requires_the_expected_schema() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(4).await?;
    let daemon = TestDaemon::sample(&fleet, LOCK).await?;
    daemon
        .apply(pb::ApplyRequest {
            target_version: Some(15.into()),
            ..avocet_tests::request()
        })
        .await?;
    add_index(&fleet, 1).await?;
    let run = daemon
        .apply(pb::ApplyRequest {
            require_expected_schema: true,
            ..avocet_tests::request()
        })
        .await?;
    let ended: Vec<(String, i32, String, String)> = run
        .tenants()
        .map(|t| {
            let code = t.error.as_ref().map(|e| e.code.clone()).unwrap_or_default();
            (t.tenant.clone(), t.outcome, code, t.current_version.text())
        })
        .collect();
    let (ok, failed) = (
        pb::TenantOutcome::Succeeded as i32,
        pb::TenantOutcome::Failed as i32,
    );
    let mut ended = ended;
    ended.sort();
    assert_eq!(
        ended,
        [
            ("t00".into(), ok, String::new(), "16".into()),
            ("t01".into(), failed, "drifted".into(), "15".into()),
            ("t02".into(), ok, String::new(), "16".into()),
            ("t03".into(), ok, String::new(), "16".into()),
        ]
    );
    let message = run
        .tenant("t01")
        .and_then(|t| t.error.as_ref())
        .map(|e| e.message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("avocet census --tenant t01")),
        "{message:?}"
    );
    // `verify --schema` shows the drifted tenant's diff and counts it a problem.
    let verified = daemon
        .client()
        .verify_all(pb::VerifyRequest {
            fleet: avocet_tests::FLEET.into(),
            schema: true,
            ..Default::default()
        })
        .await?;
    for t in &verified.tenants {
        let schema = t.schema.as_ref().expect("a schema verdict");
        match t.tenant.as_str() {
            "t01" => {
                assert!(!t.ok && !schema.expected);
                assert_eq!(schema.diff[0].object, "index census_extra_idx");
            }
            _ => assert!(t.ok && schema.expected && schema.diff.is_empty(), "{t:#?}"),
        }
    }
    daemon.stop().await?;
    Ok(())
}
