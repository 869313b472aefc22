//! Issue 30: migration sets published through the API. Two replicas on a PostgreSQL
//! control store, neither with a directory for the fleet, run a set published through one
//! of them; a rollout pins the digest its tag named at creation; a published set has the
//! digest Plan reports for the same directory (sqlx, Flyway, diesel); refusals store
//! nothing; the exact bytes come back; a set altered in the store is never run.

mod archive;
mod retention;

use std::{path::Path, time::Duration};

use anyhow::{Context, ensure};
use avocet_client::{Client, ClientError, Credentials, RolloutRecord, Timeouts, read_set_dir};
use avocet_daemon::{
    DialectKind,
    config::{AuthConfig, Role, TokenConfig},
    model::SetFormat,
};
use avocet_tests::{
    Fleet, MigrationCopy, TestDaemon, VersionField, pb, sample_dir, scenarios::every_tenant_done,
};
use sha2::{Digest, Sha256};
use tonic::Code;

/// `PublishSet`'s header for `dialect` and `format`, with `tag`.
fn header(dialect: &str, format: &str, tag: &str) -> pb::PublishSetHeader {
    pb::PublishSetHeader {
        format: format.into(),
        dialect: dialect.into(),
        tag: tag.into(),
    }
}

/// The files of `dir`, as `avocet sets publish` sends them.
fn files_of(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    Ok(read_set_dir(dir)?)
}

/// A daemon over `fleet` whose fleet `test` follows `migrations` (a directory,
/// `published:TAG` or `digest:HEX`), on the control store `store` (its own SQLite file
/// when `None`), with `format`.
async fn daemon(
    fleet: &Fleet,
    migrations: &Path,
    format: SetFormat,
    store: Option<&str>,
) -> anyhow::Result<TestDaemon> {
    let mut config = TestDaemon::config(fleet, migrations, Duration::from_secs(10))?;
    config.fleets.get_mut("test").context("fleet")?.format = format;
    if let Some(store) = store {
        config.control_store = store.to_owned();
    }
    TestDaemon::start_with(config).await
}

/// The digest a rollout pinned at creation (its stored request).
fn pinned(rollout: &pb::Rollout) -> anyhow::Result<String> {
    let spec: serde_json::Value = serde_json::from_str(&rollout.request_json)?;
    spec["set_digest"]
        .as_str()
        .map(str::to_owned)
        .context("no set_digest in the rollout's request")
}

fn status(e: &ClientError) -> (Option<Code>, String, String) {
    let reason = e
        .rejection()
        .and_then(|r| r.reason())
        .unwrap_or_default()
        .to_owned();
    (e.code(), reason, e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_published_through_one_replica_runs_through_the_other_pinned() -> anyhow::Result<()> {
    let fleet = Fleet::postgres_schemas(24).await?;
    let control = Fleet::postgres(1).await?;
    let store = control.tenants[0].dsn.clone();
    let follows = Path::new("published:main");
    let a = daemon(&fleet, follows, SetFormat::Auto, Some(&store)).await?;
    let b = daemon(&fleet, follows, SetFormat::Auto, Some(&store)).await?;
    // Before anything is published the fleet has no set: Plan says so, nothing else breaks.
    let none = b.plan().await.expect_err("a plan without a published set");
    ensure!(none.code() == Some(Code::NotFound), "{none}");

    let first = MigrationCopy::empty()?;
    first.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    first.write("0002_slow.up.sql", "SELECT pg_sleep(0.5);")?;
    first.write("0003_b.up.sql", "CREATE TABLE b (x int);")?;
    let published = a
        .client()
        .publish_set(header("postgres", "", "main"), files_of(first.path())?)
        .await?;
    ensure!(
        published.created && published.migrations == 3,
        "{published:?}"
    );
    let plan = b.plan().await?;
    ensure!(
        plan.set_digest == published.digest,
        "B plans {} for a tag naming {}",
        plan.set_digest,
        published.digest
    );

    // Apply through B; while it runs, the tag moves to a set with a fourth migration.
    let mut on_b = b.client();
    let mut events = on_b.apply(avocet_tests::request()).await?;
    let id = events
        .message()
        .await?
        .context("no first event")?
        .rollout_id;
    let second = MigrationCopy::empty()?;
    for f in ["0001_a.up.sql", "0002_slow.up.sql", "0003_b.up.sql"] {
        second.write(f, &first.read(f)?)?;
    }
    second.write("0004_c.up.sql", "CREATE TABLE c (x int);")?;
    let moved = a
        .client()
        .publish_set(header("postgres", "", "main"), files_of(second.path())?)
        .await?;
    // Paused through A, its set (no longer tagged) cannot be deleted: the rollout pinned it.
    let mut on_a = a.client();
    on_a.control(&id, avocet_client::Control::Pause).await?;
    let e = on_a
        .delete_set(&published.digest)
        .await
        .expect_err("a set deleted under its paused rollout");
    let (code, reason, message) = status(&e);
    ensure!(
        code == Some(Code::FailedPrecondition) && reason == "SET_IN_USE" && message.contains(&id),
        "{code:?} {reason} {message}"
    );
    on_a.control(&id, avocet_client::Control::Resume).await?;
    let run = RolloutRecord::collect(events).await?;
    let rollout = a.client().rollout(&id).await?;
    ensure!(
        rollout.state == pb::RolloutState::Succeeded as i32,
        "{rollout:?}"
    );
    ensure!(
        pinned(&rollout)? == published.digest,
        "the rollout runs {} after the tag moved to {}",
        pinned(&rollout)?,
        moved.digest
    );
    ensure!(run.id() == Some(id.as_str()));
    // Every tenant migrated once, to the pinned set: versions 1 to 3, never 4.
    every_tenant_done(&fleet, 3, &["a", "b"]).await?;
    // The tag moved: both replicas plan the new set now, one migration left per tenant.
    for d in [&a, &b] {
        let plan = d.plan().await?;
        ensure!(plan.set_digest == moved.digest, "{}", plan.set_digest);
        ensure!(
            plan.tenants.iter().all(|t| t.steps.len() == 1),
            "{:?}",
            plan.tenants.first()
        );
    }
    // The tag's history and the audit: ListSets shows the tag on the new set only.
    let sets = b.client().list_sets().await?;
    ensure!(sets.len() == 2, "{sets:?}");
    // What the tag's move changed: one version added, nothing removed or changed.
    let diff = b.client().diff_sets(&published.digest, "main").await?;
    let shown: Vec<String> = diff.added.iter().map(|v| v.version.text()).collect();
    let added: Vec<(&str, &str)> = diff
        .added
        .iter()
        .zip(&shown)
        .map(|(v, shown)| (shown.as_str(), v.name.as_str()))
        .collect();
    ensure!(
        added == [("4", "c")] && diff.removed.is_empty() && diff.changed.is_empty(),
        "{diff:?}"
    );
    // The set the fleet follows is not deleted; the one nothing uses any more is.
    let e = b
        .client()
        .delete_set("main")
        .await
        .expect_err("a set its fleet follows deleted");
    ensure!(
        status(&e).1 == "SET_IN_USE" && e.to_string().contains("test"),
        "{e}"
    );
    let deleted = b.client().delete_set(&published.digest).await?;
    ensure!(deleted.digest == published.digest && deleted.tags.is_empty());
    let sets = a.client().list_sets().await?;
    ensure!(
        sets.len() == 1 && sets[0].digest == moved.digest && sets[0].tags == ["main"],
        "{sets:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_set_has_plans_digest_for_its_directory() -> anyhow::Result<()> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let fleet = Fleet::postgres(1).await?;
    // hawkBit's own `BEGIN`…`COMMIT` file runs outside a transaction by Flyway's side file,
    // which the published set carries like any other file.
    let flyway = tempfile::tempdir()?;
    for entry in std::fs::read_dir(fixtures.join("hawkbit-flyway/postgresql"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), flyway.path().join(entry.file_name()))?;
    }
    std::fs::write(
        flyway.path().join("V1_12_37__unify__POSTGRESQL.sql.conf"),
        "executeInTransaction=false\n",
    )?;
    for (dir, format) in [
        (sample_dir(DialectKind::Postgres), SetFormat::Sqlx),
        (flyway.path().to_owned(), SetFormat::Flyway),
        (fixtures.join("crates.io/migrations"), SetFormat::Diesel),
    ] {
        let d = daemon(&fleet, &dir, format, None).await?;
        let planned = d.plan().await?.set_digest;
        let files = files_of(&dir)?;
        let mut client = d.client();
        // Detected when the header leaves the format empty, as a directory load detects it.
        let published = client
            .publish_set(header("postgres", "", ""), files.clone())
            .await?;
        ensure!(
            published.digest == planned && published.format == format.as_str(),
            "{}: published {published:?}, planned {planned}",
            dir.display()
        );
        let again = client
            .publish_set(header("postgres", format.as_str(), "v1"), files)
            .await?;
        ensure!(
            again.digest == planned && !again.created,
            "{}: {again:?}",
            dir.display()
        );
        let sets = client.list_sets().await?;
        ensure!(
            sets.len() == 1 && sets[0].tags == ["v1"],
            "{}: {sets:?}",
            dir.display()
        );
        d.stop().await?;
    }
    Ok(())
}

/// The token of identity `name`.
fn secret(name: &str) -> String {
    format!("{name}-token-0123456789abcdef")
}

fn token(name: &str, role: Role) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: Some(hex::encode(Sha256::digest(secret(name)))),
        sha256_file: None,
        role,
        fleets: Vec::new(),
    }
}

async fn client_as(d: &TestDaemon, name: &str) -> anyhow::Result<Client> {
    let credentials = Credentials {
        token: Some(secret(name)),
        ..Default::default()
    };
    Ok(Client::connect_as(d.addr.clone(), Timeouts::default(), &credentials).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_sets_store_nothing_and_an_altered_one_never_runs() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("control.db");
    let set = MigrationCopy::empty()?;
    set.write("0001_a.up.sql", "CREATE TABLE a (x int);")?;
    let mut config = TestDaemon::config(&fleet, set.path(), Duration::from_secs(10))?;
    config.control_store = format!("sqlite://{}?mode=rwc", db.display());
    config.limits.max_set_bytes = 4096;
    config.auth = AuthConfig {
        tokens: vec![
            token("viewer", Role::Viewer),
            token("operator", Role::Operator),
        ],
        clients: Vec::new(),
    };
    let d = TestDaemon::start_with(config).await?;
    let (mut viewer, mut operator) = (
        client_as(&d, "viewer").await?,
        client_as(&d, "operator").await?,
    );
    let file = |path: &str, text: &str| (path.to_owned(), text.as_bytes().to_vec());
    let refusals = [
        (
            "a set that does not load",
            vec![file("0001_a.up.sql", "SELECT 'unterminated;")],
            Code::InvalidArgument,
            "SET_REFUSED",
            "0001_a.up.sql",
        ),
        (
            "a path with ..",
            vec![file("../0001_a.up.sql", "SELECT 1;")],
            Code::InvalidArgument,
            "SET_REFUSED",
            "../0001_a.up.sql",
        ),
        (
            "an oversize set",
            vec![
                file("0001_a.up.sql", "SELECT 1;"),
                file(
                    "0002_b.up.sql",
                    &format!("-- {}\nSELECT 2;", "x".repeat(5000)),
                ),
            ],
            Code::ResourceExhausted,
            "SET_TOO_LARGE",
            "0002_b.up.sql",
        ),
    ];
    for (what, files, code, reason, names) in refusals {
        let e = operator
            .publish_set(header("sqlite", "", "main"), files)
            .await
            .expect_err(what);
        let (got, got_reason, message) = status(&e);
        ensure!(
            got == Some(code) && got_reason == reason && message.contains(names),
            "{what}: {got:?} {got_reason} {message}"
        );
    }
    let good = vec![file("0001_a.up.sql", "CREATE TABLE a (x int);")];
    let e = viewer
        .publish_set(header("sqlite", "", "main"), good.clone())
        .await
        .expect_err("a viewer publishes");
    ensure!(e.code() == Some(Code::PermissionDenied), "{e}");
    ensure!(
        viewer.list_sets().await?.is_empty(),
        "a refusal stored a set"
    );

    // Stored, then altered in the store by hand: read back and run are both refused.
    let published = operator.publish_set(header("sqlite", "", ""), good).await?;
    let mut conn = {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?
    };
    sqlx::query("UPDATE published_set_files SET content = ? WHERE path = '0001_a.up.sql'")
        .bind(hex::encode("DROP TABLE a;"))
        .execute(&mut conn)
        .await?;
    let e = viewer
        .get_set(&published.digest, true)
        .await
        .expect_err("an altered set read back");
    let (got, reason, message) = status(&e);
    ensure!(
        got == Some(Code::DataLoss)
            && reason == "SET_TAMPERED"
            && message.contains("0001_a.up.sql"),
        "{got:?} {reason} {message}"
    );
    let e = operator
        .apply(pb::ApplyRequest {
            set: Some(published.digest.clone()),
            ..avocet_tests::request()
        })
        .await
        .expect_err("an altered set applied");
    let (got, reason, _) = status(&e);
    ensure!(
        got == Some(Code::DataLoss) && reason == "SET_TAMPERED",
        "{e}"
    );
    for i in 0..fleet.tenants.len() {
        let history = fleet.history(i).await.unwrap_or_default();
        ensure!(history.is_empty(), "tenant {i} ran something: {history:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_reads_back_byte_for_byte_and_runs_by_tag() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(2).await?;
    let own = MigrationCopy::empty()?;
    own.write("0001_own.up.sql", "CREATE TABLE own (x int);")?;
    let d = daemon(&fleet, own.path(), SetFormat::Auto, None).await?;
    let mut client = d.client();
    let files = vec![
        (
            "0001_a.up.sql".to_owned(),
            b"CREATE TABLE a (x int);\r\n".to_vec(),
        ),
        (
            "0001_a.down.sql".to_owned(),
            "DROP TABLE a; -- é\n".as_bytes().to_vec(),
        ),
        ("README.md".to_owned(), vec![0xff, 0x00, 0xfe, b'\n']),
        (
            "0002_big.up.sql".to_owned(),
            format!("-- {}\nSELECT 1;", "y".repeat(3 << 20)).into_bytes(),
        ),
    ];
    let published = client
        .publish_set(
            header("sqlite", "sqlx", "release-2026-12-06"),
            files.clone(),
        )
        .await?;
    for set in [published.digest.as_str(), "release-2026-12-06"] {
        let got = client.get_set(set, true).await?;
        let mut want = files.clone();
        want.sort();
        let back: Vec<(String, Vec<u8>)> = got
            .files
            .iter()
            .map(|f| (f.path.clone(), f.data.clone()))
            .collect();
        ensure!(back == want, "{set}: the files read back differ");
        ensure!(
            got.files
                .iter()
                .all(|f| f.sha256 == hex::encode(Sha256::digest(&f.data))),
            "{set}: a SHA-256 differs"
        );
        let manifest = client.get_set(set, false).await?;
        ensure!(
            manifest
                .files
                .iter()
                .all(|f| f.data.is_empty() && f.bytes > 0),
            "{set}: a manifest without files carries bytes"
        );
    }
    // A fleet with a directory of its own runs the published set a request names.
    let tagged = client.tag_set("main", "release-2026-12-06").await?;
    ensure!(tagged.digest == published.digest && tagged.previous_digest.is_empty());
    let run = d
        .apply(pb::ApplyRequest {
            set: Some("main".into()),
            ..avocet_tests::request()
        })
        .await?;
    let id = run.id().context("rollout id")?;
    let rollout = client.rollout(id).await?;
    ensure!(
        rollout.state == pb::RolloutState::Succeeded as i32
            && pinned(&rollout)? == published.digest,
        "{rollout:?}"
    );
    for i in 0..fleet.tenants.len() {
        let objects = fleet.objects(i, "BASE TABLE").await?;
        ensure!(
            objects.contains("a") && !objects.contains("own"),
            "tenant {i}: {objects:?}"
        );
    }
    Ok(())
}
