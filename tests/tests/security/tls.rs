//! TLS and mutual TLS with real certificates, and a listener beyond loopback that needs
//! them (or auth and `--insecure`).

use super::*;

/// A CA, and certificates it signs.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A CA named `name`: `<name>-ca.pem`.
    fn ca(&self, name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        std::fs::write(self.path(&format!("{name}-ca.pem")), ca.pem())?;
        Ok(ca)
    }

    /// A certificate for `names` with common name `cn`, signed by `ca`: `<file>.pem` and
    /// `<file>.key`.
    fn issue(
        &self,
        ca: &CertifiedIssuer<'static, KeyPair>,
        file: &str,
        cn: &str,
        names: &[&str],
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Avocet Tests");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, ca)?;
        let (pem, key_path) = (
            self.path(&format!("{file}.pem")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&pem, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok((pem, key_path))
    }
}

/// Serves `config` on 127.0.0.1 over TLS; the `https://` address and the server task.
async fn serve_tls(
    config: Config,
) -> anyhow::Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), ServerError>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(avocet_daemon::serve(listener, config, async {
        let _ = stopped.await;
    }));
    Ok((format!("https://localhost:{port}"), stop, task))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_and_mutual_tls_admit_only_trusted_certificates() -> anyhow::Result<()> {
    let (eu, us) = (Fleet::sqlite(1).await?, Fleet::sqlite(1).await?);
    let pki = Pki::new()?;
    let server_ca = pki.ca("server")?;
    let (cert, key) = pki.issue(&server_ca, "server", "avocetd", &["localhost", "127.0.0.1"])?;
    let clients_ca = pki.ca("clients")?;
    let (ci_cert, ci_key) = pki.issue(&clients_ca, "ci", "ci-deployer", &["ci"])?;
    let (stranger_cert, stranger_key) = pki.issue(&clients_ca, "stranger", "stranger", &["x"])?;
    let rogue_ca = pki.ca("rogue")?;
    let (rogue_cert, rogue_key) = pki.issue(&rogue_ca, "rogue", "ci-deployer", &["ci"])?;
    let mut config = config(
        &eu,
        &us,
        AuthConfig {
            tokens: vec![token("viewer", Role::Viewer, &[])],
            clients: vec![ClientConfig {
                name: "ci".into(),
                subject: "O=Avocet Tests, CN=ci-deployer".into(),
                role: Role::Operator,
                fleets: vec![EU.into()],
            }],
        },
    )?;
    let store = tempfile::tempdir()?;
    config.control_store = format!("sqlite://{}/control.db?mode=rwc", store.path().display());
    config.tls = Some(TlsConfig {
        cert,
        key,
        client_ca: Some(pki.path("clients-ca.pem")),
    });
    let (addr, stop, task) = serve_tls(config).await?;
    let trusting = |cert: Option<(&Path, &Path)>, token: Option<&str>| Credentials {
        token: token.map(secret),
        ca: Some(pki.path("server-ca.pem")),
        cert: cert.map(|(c, k)| (c.to_owned(), k.to_owned())),
        ..Default::default()
    };
    // A trusted client certificate whose subject maps to `ci`: an operator on eu-test.
    let mut ci = client(&addr, trusting(Some((&ci_cert, &ci_key)), None)).await?;
    let run = avocet_client::RolloutRecord::collect(
        ci.apply(pb::ApplyRequest {
            fleet: EU.into(),
            ..Default::default()
        })
        .await?,
    )
    .await?;
    let rollout = ci.rollout(run.id().context("id")?).await?;
    ensure!(
        rollout.state == pb::RolloutState::Succeeded as i32,
        "{rollout:?}"
    );
    ensure!(
        rollout
            .audit
            .first()
            .is_some_and(|a| a.caller.starts_with("ci (peer"))
    );
    let other = call(&mut ci, Rpc::Apply, US, "").await;
    ensure!(other == Err(Code::PermissionDenied), "{other:?}");
    // A token over a trusted certificate: the token's identity (a viewer).
    let mut viewer = client(&addr, trusting(Some((&ci_cert, &ci_key)), Some("viewer"))).await?;
    let got = call(&mut viewer, Rpc::Apply, EU, "").await;
    ensure!(got == Err(Code::PermissionDenied), "{got:?}");
    // Trusted, but its subject maps to no identity.
    let mut stranger = client(&addr, trusting(Some((&stranger_cert, &stranger_key)), None)).await?;
    let got = call(&mut stranger, Rpc::Plan, EU, "").await;
    ensure!(got == Err(Code::Unauthenticated), "{got:?}");
    // The same subject from a CA the daemon does not trust, and no certificate at all:
    // the handshake fails, nothing is answered.
    for (what, creds) in [
        (
            "a rogue CA's certificate",
            trusting(Some((&rogue_cert, &rogue_key)), None),
        ),
        ("no certificate", trusting(None, Some("viewer"))),
    ] {
        let refused = match client(&addr, creds).await {
            Err(ClientError::Connect { .. }) => true,
            Err(e) => anyhow::bail!("{what}: {e}"),
            Ok(mut c) => {
                let got = call(&mut c, Rpc::Plan, EU, "").await;
                // The handshake failed: the call fails at the transport, never with an answer.
                let transport = [Code::Unavailable, Code::Unknown, Code::Cancelled];
                ensure!(
                    got.is_err_and(|c| transport.contains(&c)),
                    "{what}: {got:?}"
                );
                true
            }
        };
        ensure!(refused, "{what} was admitted");
    }
    // A client that does not trust the daemon's CA refuses it.
    let untrusting = Credentials {
        token: Some(secret("viewer")),
        ..Default::default()
    };
    let got = match client(&addr, untrusting).await {
        Err(e) => Some(e.to_string()),
        Ok(mut c) => call(&mut c, Rpc::Plan, EU, "")
            .await
            .err()
            .map(|c| format!("{c:?}")),
    };
    ensure!(got.is_some(), "a client without the CA trusted the daemon");
    let _ = stop.send(());
    task.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_listener_needs_auth_and_tls_or_insecure() -> anyhow::Result<()> {
    let (eu, us) = (Fleet::sqlite(1).await?, Fleet::sqlite(1).await?);
    let mut open = config(&eu, &us, AuthConfig::default())?;
    let store = tempfile::tempdir()?;
    open.control_store = format!("sqlite://{}/control.db?mode=rwc", store.path().display());
    let exposed: std::net::SocketAddr = "0.0.0.0:7400".parse()?;
    let err = open.check_exposure(exposed).unwrap_err();
    ensure!(
        matches!(err, ConfigError::Invalid { ref key, .. } if key == "listen"),
        "{err}"
    );
    ensure!(err.to_string().contains("insecure = true"), "{err}");
    // Tokens alone are not enough: they would cross the network in the clear.
    let mut tokens_only = open.clone();
    tokens_only.auth.tokens = vec![token("admin", Role::Admin, &[])];
    let err = tokens_only.check_exposure(exposed).unwrap_err();
    ensure!(err.to_string().contains("without TLS"), "{err}");
    // serve() checks the listener it is given, whatever `listen` says.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await?;
    let refused = avocet_daemon::serve(listener, open.clone(), std::future::pending()).await;
    ensure!(
        matches!(refused, Err(ServerError::Config(ConfigError::Invalid { ref key, .. })) if key == "listen"),
        "{refused:?}"
    );
    // With insecure = true it serves (and warns).
    open.insecure = true;
    ensure!(open.check_exposure(exposed).is_ok());
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(avocet_daemon::serve(listener, open, async {
        let _ = stopped.await;
    }));
    let mut c = client(&format!("http://127.0.0.1:{port}"), Credentials::default()).await?;
    ensure!(c.list_fleets().await?.len() == 2);
    let _ = stop.send(());
    task.await??;
    Ok(())
}
