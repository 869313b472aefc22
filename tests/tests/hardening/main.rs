//! Issue 25, an attack on the running daemon: each test answers one finding and fails on
//! the code before its fix. Unauthenticated calls cannot add metric series; registered
//! DSNs reach only their fleet's servers and files, never another fleet's tenants; one
//! migration file cannot crash the daemon or leak a file outside its set. What one caller
//! may cost is in `limits.rs`.

mod limits;

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, ensure};
use avocet_client::{ClientError, pb};
use avocet_daemon::{
    Config,
    config::{AuthConfig, Role, TokenConfig},
};
use avocet_tests::{FLEET, Fleet, MigrationCopy, TestDaemon, sample_dir};
use sha2::{Digest, Sha256};
use tonic::Code;

fn code<T: std::fmt::Debug>(r: &Result<T, ClientError>) -> Option<Code> {
    r.as_ref().err().and_then(ClientError::code)
}

fn registration(fleet: &str, tenant: &str, dsn: &str) -> pb::RegisterTenantRequest {
    pb::RegisterTenantRequest {
        fleet: fleet.into(),
        tenant: tenant.into(),
        dsn: dsn.into(),
        ..Default::default()
    }
}

/// Finding 1: 200 calls without a token to invented paths are each UNAUTHENTICATED and
/// add no series: `/metrics` names no invented path and stays small.
#[tokio::test(flavor = "multi_thread")]
async fn invented_paths_add_no_metric_series() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let daemon = TestDaemon::start_with(viewer_only(&fleet)?).await?;
    let channel = tonic::transport::Channel::from_shared(daemon.addr.clone())?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    for i in 0..200 {
        let path = format!("/avocet.v1.Migrator/{i:06}{}", "X".repeat(2_000));
        grpc.ready().await?;
        let got = grpc
            .unary(
                tonic::Request::new(pb::PlanRequest::default()),
                path.parse::<tonic::codegen::http::uri::PathAndQuery>()?,
                tonic_prost::ProstCodec::<pb::PlanRequest, pb::PlanResponse>::default(),
            )
            .await;
        let status = got.err().context("an invented method answered")?;
        ensure!(
            // Past 50 refusals a minute the peer is locked out (finding 16).
            [
                Code::Unauthenticated,
                Code::Unimplemented,
                Code::ResourceExhausted
            ]
            .contains(&status.code()),
            "{status:?}"
        );
    }
    let (status, text) = avocet_tests::get(daemon.admin, "/metrics").await?;
    ensure!(status == 200);
    ensure!(!text.contains("XXXX"), "a request path is a label");
    ensure!(!text.contains("000123"), "a request path is a label");
    ensure!(text.contains("_OTHER"), "unknown methods are _OTHER");
    ensure!(text.len() < 64 << 10, "/metrics is {} bytes", text.len());
    daemon.stop().await
}

/// A fake PostgreSQL server that asks for a cleartext password and keeps what it gets.
async fn fake_cleartext_server() -> anyhow::Result<(u16, tokio::task::JoinHandle<Vec<u8>>)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Ok((mut s, _))) =
            tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
        {
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await;
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await
            {
                got.extend_from_slice(&buf[..n]);
            }
        }
        got
    });
    Ok((port, task))
}

/// Findings 2, 4 and 19: a PostgreSQL fleet whose registered tenants take its password
/// file. A DSN naming a server the fleet does not use (a fake one asking for a cleartext
/// password), a password however spelled, or a parameter naming a file or another host
/// is refused; a server of the fleet that asks for a cleartext password is refused
/// (`require_scram`); the fake server never receives the password.
#[tokio::test(flavor = "multi_thread")]
async fn registered_dsns_reach_only_the_fleets_scram_servers() -> anyhow::Result<()> {
    const SECRET: &str = "Fleet-Secret-PW-25";
    let fleet = Fleet::postgres(2).await?;
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("pw");
    std::fs::write(&secret, SECRET)?;
    let mut config =
        TestDaemon::config(&fleet, &sample_dir(fleet.dialect), Duration::from_secs(5))?;
    let fc = config.fleets.get_mut(FLEET).context("fleet")?;
    fc.tenants.truncate(1);
    fc.password_file = Some(secret);
    let daemon = TestDaemon::start_with(config).await?;
    let mut c = daemon.client();
    let (port, fake) = fake_cleartext_server().await?;
    let fake_dsn = format!("postgres://role@127.0.0.1:{port}/x");
    let own = &fleet.tenants[1].dsn;
    for dsn in [
        fake_dsn.clone(),
        format!("{own}?passw%6Frd=x"),
        format!("{own}?password='x'"),
        format!("{own}?password=;x"),
        format!("{own}?sslrootcert=/etc/shadow"),
        format!("{own}?host=/var/run/postgresql"),
        format!("{own}?host=127.0.0.1&port={port}"),
    ] {
        let got = c.register_tenant(registration(FLEET, "r1", &dsn)).await;
        ensure!(code(&got) == Some(Code::InvalidArgument), "{dsn}: {got:?}");
    }
    // The fleet's own server (trust authentication) is accepted.
    c.register_tenant(registration(FLEET, "r1", own)).await?;
    let status = c
        .status(pb::StatusRequest {
            fleet: FLEET.into(),
            refresh: true,
            page_size: 10,
            ..Default::default()
        })
        .await?;
    ensure!(status.tenant_count == 2, "{status:?}");
    // A server on an allowed host that asks for a cleartext password: refused by
    // require_scram before the password goes anywhere.
    let mut config =
        TestDaemon::config(&fleet, &sample_dir(fleet.dialect), Duration::from_secs(5))?;
    let fc = config.fleets.get_mut(FLEET).context("fleet")?;
    fc.tenants.truncate(1);
    fc.allowed_hosts = Some(vec!["127.0.0.1:*".into()]);
    fc.password_file = Some(dir.path().join("pw"));
    let open = TestDaemon::start_with(config).await?;
    let got = open
        .client()
        .register_tenant(registration(FLEET, "r2", &fake_dsn))
        .await;
    ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
    ensure!(format!("{got:?}").contains("cleartext"), "{got:?}");
    open.stop().await?;
    daemon.stop().await?;
    let received = fake.await?;
    ensure!(
        !String::from_utf8_lossy(&received).contains(SECRET),
        "the fake server received the fleet's password"
    );
    Ok(())
}

/// A daemon serving two fleets of one dialect, named as given (SQLite fleets keep their
/// own `sqlite_root`).
fn two_fleets((name_a, a): (&str, &Fleet), (name_b, b): (&str, &Fleet)) -> anyhow::Result<Config> {
    let mut config = TestDaemon::config(a, &sample_dir(a.dialect), Duration::from_secs(5))?;
    let fa = config.fleets.remove(FLEET).context("fleet")?;
    let mut fb = fa.clone();
    fb.tenants = b.tenants.clone();
    fb.sqlite_root = b.sqlite_dir().map(std::path::Path::to_owned);
    config.fleets = BTreeMap::from([(name_a.to_owned(), fa), (name_b.to_owned(), fb)]);
    Ok(config)
}

/// A daemon over `fleet` whose `[auth]` knows one viewer token, `viewer-token`, and that
/// never slows a failing peer down (the slowdown of finding 16 has its own unit test).
fn viewer_only(fleet: &Fleet) -> anyhow::Result<Config> {
    let mut config = TestDaemon::config(fleet, &sample_dir(fleet.dialect), Duration::from_secs(5))?;
    config.auth = AuthConfig {
        tokens: vec![TokenConfig {
            name: "viewer".into(),
            sha256: Some(hex::encode(Sha256::digest("viewer-token"))),
            sha256_file: None,
            role: Role::Viewer,
            fleets: Vec::new(),
        }],
        clients: Vec::new(),
    };
    config.limits.max_auth_failure_delay = Duration::ZERO;
    Ok(config)
}

/// Finding 5: fleet b cannot register fleet a's database, whole or one schema of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_cannot_register_another_fleets_database() -> anyhow::Result<()> {
    let (a, b) = (Fleet::postgres(1).await?, Fleet::postgres(2).await?);
    let daemon = TestDaemon::start_with(two_fleets(("a", &a), ("b", &b))?).await?;
    let mut c = daemon.client();
    let got = c
        .register_tenant(registration("b", "stolen", &a.tenants[0].dsn))
        .await;
    ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
    let message = got
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    ensure!(message.contains("fleet \"a\""), "{message}");
    let mut schema = registration("b", "stolen", &a.tenants[0].dsn);
    schema.schema = "public".into();
    let got = c.register_tenant(schema).await;
    ensure!(code(&got) == Some(Code::InvalidArgument), "{got:?}");
    // Its own fleet's other database is fine.
    c.register_tenant(registration("b", "again", &b.tenants[1].dsn))
        .await?;
    daemon.stop().await
}

/// Finding 6: a registered SQLite path stays in the fleet's `sqlite_root`, decoded and
/// canonicalised, and is never the control store.
#[tokio::test(flavor = "multi_thread")]
async fn registered_sqlite_files_stay_inside_sqlite_root() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let root = fleet.sqlite_dir().context("dir")?.to_owned();
    let mut config =
        TestDaemon::config(&fleet, &sample_dir(fleet.dialect), Duration::from_secs(5))?;
    config.control_store = format!("sqlite://{}/control.db?mode=rwc", root.display());
    let daemon = TestDaemon::start_with(config).await?;
    let mut c = daemon.client();
    let r = root.display();
    for dsn in [
        format!("sqlite://{r}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/tmp/escaped.db?mode=rwc"),
        format!("sqlite://{r}/a%00b.db?mode=rwc"),
        format!("sqlite://{r}/control.db"),
        "sqlite:///proc/self/environ".to_owned(),
        "sqlite://elsewhere.db?mode=rwc".to_owned(),
    ] {
        let got = c.register_tenant(registration(FLEET, "r1", &dsn)).await;
        ensure!(code(&got) == Some(Code::InvalidArgument), "{dsn}: {got:?}");
    }
    ensure!(!std::path::Path::new("/tmp/escaped.db").exists());
    c.register_tenant(registration(
        FLEET,
        "r1",
        &format!("sqlite://{r}/r1.db?mode=rwc"),
    ))
    .await?;
    daemon.stop().await
}

/// Finding 7: a statement of 35,000 terms, added while the daemon runs, is an `unparsed`
/// note; the daemon (whose runtime threads have 2 MiB stacks) keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_deeply_nested_statement_is_unparsed_not_a_crash() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let set = MigrationCopy::of(fleet.dialect)?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    let terms = vec!["1"; 35_000].join(" + ");
    set.write("0900_deep.sql", &format!("SELECT {terms};\n"))?;
    let ors: Vec<String> = (0..100_000).map(|i| format!("id = {i}")).collect();
    set.write(
        "0901_wide.sql",
        &format!(
            "CREATE TABLE deep_t (id INTEGER);\nDELETE FROM deep_t WHERE {};\n",
            ors.join(" OR ")
        ),
    )?;
    let plan = daemon.plan().await?;
    let text = format!("{plan:?}");
    ensure!(
        text.contains("unparsed") || text.contains("Unparsed"),
        "no unparsed note"
    );
    ensure!(daemon.plan().await.is_ok(), "the daemon stopped serving");
    daemon.stop().await
}

/// Finding 8: a symbolic link out of the set is refused; its target's text is never in
/// an answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_out_of_the_set_is_refused() -> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let set = MigrationCopy::of(fleet.dialect)?;
    let outside = tempfile::tempdir()?;
    let secret = outside.path().join("secret.sql");
    std::fs::write(&secret, "SELECT 'CANARY-OUTSIDE-25';\n")?;
    let daemon = TestDaemon::start(&fleet, set.path(), Duration::from_secs(5)).await?;
    std::os::unix::fs::symlink(&secret, set.path().join("0900_link.sql"))?;
    let got = daemon
        .client()
        .plan(pb::PlanRequest {
            fleet: FLEET.into(),
            ..Default::default()
        })
        .await;
    ensure!(!format!("{got:?}").contains("CANARY-OUTSIDE-25"), "{got:?}");
    ensure!(got.is_err(), "{got:?}");
    ensure!(format!("{got:?}").contains("symbolic link"), "{got:?}");
    daemon.stop().await
}
