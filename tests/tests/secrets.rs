//! A DSN password goes nowhere: a full apply and rollback on PostgreSQL tenants whose DSNs
//! hold a known password, and a set of configuration errors around such DSNs, and the
//! password is in none of the daemon's logs (at debug level), the spans it exported over
//! OTLP, the error messages, the API's answers, or the files it wrote.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, ensure};
use avocet_client::{Client, RolloutRecord, pb};
use avocet_tests::{Fleet, OtlpReceiver, free_port, sample_dir};

const PASSWORD: &str = "Kn0wn-S3cret-PW-7f3a";
const BIN: &str = env!("CARGO_BIN_EXE_avocetd-test");

/// The configuration of a PostgreSQL fleet `f` over `tenants` (TOML tenant lines).
fn config(port: u16, tenants: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\n\
         control_store = \"sqlite://data/control.db?mode=rwc\"\n\
         [fleets.f]\n\
         dialect = \"postgres\"\n\
         migrations = \"{}\"\n\
         password_env = \"TENANT_DB_PASSWORD\"\n\
         tenants = [\n{tenants}]\n",
        sample_dir(avocet_daemon::DialectKind::Postgres).display()
    )
}

/// `fleet`'s tenants as TOML lines: the first with the password in its DSN's userinfo,
/// the others taking the fleet's `password_env`.
fn tenant_lines(fleet: &Fleet) -> anyhow::Result<String> {
    let mut lines = String::new();
    for (i, t) in fleet.tenants.iter().enumerate() {
        let dsn = match i {
            0 => with_password(&t.dsn)?,
            _ => t.dsn.clone(),
        };
        lines.push_str(&format!("  {{ id = \"{}\", dsn = \"{dsn}\" }},\n", t.id));
    }
    Ok(lines)
}

/// `dsn` with the password in its userinfo.
fn with_password(dsn: &str) -> anyhow::Result<String> {
    let dsn = dsn.replacen("://postgres@", &format!("://postgres:{PASSWORD}@"), 1);
    ensure!(
        dsn.contains(PASSWORD),
        "TEST_PG_URL must name the user postgres"
    );
    Ok(dsn)
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                seen += 1;
                let bytes = std::fs::read(&path)?;
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    ensure!(seen > 0, "no file under {}", dir.display());
    Ok(found)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dsn_password_is_nowhere_but_in_the_configuration() -> anyhow::Result<()> {
    let fleet = Fleet::postgres(2).await?;
    let receiver = OtlpReceiver::start().await?;
    let work = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let port = free_port()?;
    let config_file = work.path().join("avocet.toml");
    std::fs::write(&config_file, config(port, &tenant_lines(&fleet)?))?;
    let log_file = logs.path().join("avocetd.log");
    let mut child = tokio::process::Command::new(BIN)
        .arg(&config_file)
        .current_dir(work.path())
        .env("RUST_LOG", "debug")
        .env("TENANT_DB_PASSWORD", PASSWORD)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file)?)
        .kill_on_drop(true)
        .spawn()?;
    let addr = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..400 {
        if let Ok(c) = Client::connect(addr.clone()).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = client.context("avocetd did not start")?;
    // Every answer, and every error message, as the client sees them.
    let mut answers = String::new();
    let all = |fleet: &str| pb::PlanRequest {
        fleet: fleet.into(),
        ..Default::default()
    };
    answers += &format!("{:?}", c.plan(all("f")).await?);
    let run = RolloutRecord::collect(
        c.apply(pb::ApplyRequest {
            fleet: "f".into(),
            ..Default::default()
        })
        .await?,
    )
    .await?;
    ensure!(
        run.finished().context("finished")?.succeeded == 2,
        "{run:?}"
    );
    answers += &format!("{run:?}");
    answers += &format!(
        "{:?}",
        c.verify(pb::VerifyRequest {
            fleet: "f".into(),
            ..Default::default()
        })
        .await?
    );
    answers += &format!(
        "{:?}",
        c.status(pb::StatusRequest {
            fleet: "f".into(),
            refresh: true,
            page_size: 10,
            ..Default::default()
        })
        .await?
    );
    answers += &format!("{:?}", c.get_tenant("f", "t00").await?);
    answers += &format!(
        "{:?}",
        c.list_tenants(pb::ListTenantsRequest {
            fleet: "f".into(),
            ..Default::default()
        })
        .await?
    );
    // A registered tenant takes the fleet's password; one whose DSN holds a password is
    // refused (the control store would keep it in clear).
    let registered = c
        .register_tenant(pb::RegisterTenantRequest {
            fleet: "f".into(),
            tenant: "t-reg".into(),
            dsn: fleet.tenants[0].dsn.clone(),
            ..Default::default()
        })
        .await?;
    answers += &format!("{registered:?}");
    let inline = c
        .register_tenant(pb::RegisterTenantRequest {
            fleet: "f".into(),
            tenant: "t-inline".into(),
            dsn: with_password(&fleet.tenants[0].dsn)?,
            ..Default::default()
        })
        .await;
    let refused = inline.as_ref().err().and_then(|e| e.code());
    ensure!(refused == Some(tonic::Code::InvalidArgument), "{inline:?}");
    answers += &format!("{inline:?}");
    for bad in [
        format!("mysql://root:{PASSWORD}@127.0.0.1:3306/x"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/x"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/x?sslmode=bogus"),
    ] {
        let got = c
            .register_tenant(pb::RegisterTenantRequest {
                fleet: "f".into(),
                tenant: "t-bad".into(),
                dsn: bad,
                ..Default::default()
            })
            .await;
        answers += &format!("{got:?}");
    }
    c.deregister_tenant("f", "t-reg").await?;
    let rollouts = c.list_rollouts(pb::ListRolloutsRequest::default()).await?;
    answers += &format!("{rollouts:?}");
    let back = RolloutRecord::collect(
        c.rollback(pb::RollbackRequest {
            fleet: "f".into(),
            target: Some(pb::rollback_request::Target::ToVersion(0.into())),
            accept_data_loss: true,
            ..Default::default()
        })
        .await?,
    )
    .await?;
    ensure!(
        back.finished().context("finished")?.succeeded == 2,
        "{back:?}"
    );
    answers += &format!("{back:?}");
    ensure!(answers.len() > 2000, "answers: {answers}");
    ensure!(
        !answers.contains(PASSWORD),
        "an answer holds the password: {answers}"
    );

    // Stopped by SIGTERM, it flushes its spans and exits 0.
    let pid = child.id().context("pid")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    ensure!(status.success(), "avocetd exited {status}");
    let log = std::fs::read_to_string(&log_file)?;
    ensure!(log.contains("rollout finished"), "debug log: {log}");
    ensure!(
        !log.contains(PASSWORD),
        "the log holds the password:\n{log}"
    );
    // Nor the migrations' SQL (sqlparser logs every statement it parses at debug; issue
    // 25, finding 21).
    ensure!(
        !log.contains("CREATE TABLE accounts") && !log.contains("CREATE TABLE users"),
        "the debug log holds migration SQL"
    );
    let spans = receiver.spans();
    ensure!(
        spans.iter().any(|(name, _)| name == "migration"),
        "no migration span exported: {:?}",
        spans.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    ensure!(
        !receiver.everything().contains(PASSWORD),
        "an exported span holds the password"
    );
    // The files it wrote: the control store (rollouts, events, audit, registered tenants).
    let holding = files_holding(&work.path().join("data"), PASSWORD.as_bytes())?;
    ensure!(
        holding.is_empty(),
        "files holding the password: {holding:?}"
    );

    // Configuration errors around such DSNs: each is one message naming the key, and none
    // shows the password.
    let dsn = format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/x");
    let broken = [
        // A TOML syntax error on the DSN's line (a missing comma) quotes the line.
        format!("  {{ id = \"t\", dsn = \"{dsn}\" labels = {{}} }},\n"),
        // A DSN of another dialect.
        format!("  {{ id = \"t\", dsn = \"mysql://root:{PASSWORD}@127.0.0.1/x\" }},\n"),
        // An unknown key beside the DSN.
        format!("  {{ id = \"t\", dsn = \"{dsn}\", passwrd = \"{PASSWORD}\" }},\n"),
        // Two tenants with one id.
        format!("  {{ id = \"t\", dsn = \"{dsn}\" }},\n  {{ id = \"t\", dsn = \"{dsn}\" }},\n"),
        // A bad id.
        format!("  {{ id = \"../t\", dsn = \"{dsn}\" }},\n"),
    ];
    for (i, tenants) in broken.iter().enumerate() {
        let file = work.path().join(format!("broken-{i}.toml"));
        std::fs::write(&file, config(free_port()?, tenants))?;
        let out = tokio::process::Command::new(BIN)
            .arg(&file)
            .current_dir(work.path())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "broken config {i} was accepted: {stderr}"
        );
        ensure!(stderr.contains("configuration"), "config {i}: {stderr}");
        ensure!(
            !stderr.contains(PASSWORD),
            "config {i} shows the password: {stderr}"
        );
    }
    Ok(())
}
