//! The configuration shipped in `deploy/kubernetes/configmap.yaml` is one `avocetd` loads:
//! a misspelt key there would stop every replica at start.

use std::time::Duration;

use avocet_daemon::Config;

/// The `avocet.toml: |` block of the ConfigMap, unindented.
fn configmap_toml() -> String {
    let text = include_str!("../../deploy/kubernetes/configmap.yaml");
    let mut lines = text.lines().skip_while(|l| l.trim() != "avocet.toml: |");
    lines.next();
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
// figment's Jail takes a closure returning its own (large) error type.
#[allow(clippy::result_large_err)]
fn the_kubernetes_configmap_loads() {
    let toml = configmap_toml();
    assert!(toml.contains("[fleets.prod]"), "block not found: {toml}");
    // The Jail sets the Secret's variable for this test alone, as the Deployment does.
    figment::Jail::expect_with(|jail| {
        // The Secrets' files, projected under /etc/avocet in the pod, here in the jail.
        let etc = jail.directory().join("etc-avocet");
        let toml = toml.replace("/etc/avocet/", &format!("{}/", etc.display()));
        std::fs::create_dir_all(etc.join("auth")).map_err(|e| e.to_string())?;
        for name in ["dashboards", "deployer", "admin"] {
            let hash = format!("{:064x}\n", name.len());
            jail.create_file(format!("etc-avocet/auth/{name}.sha256"), &hash)?;
        }
        jail.create_file("avocet.toml", &toml)?;
        // The image's working directory holds the repository's migrations/.
        let set = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
        std::fs::create_dir_all(jail.directory().join("migrations/postgres"))
            .map_err(|e| e.to_string())?;
        for entry in std::fs::read_dir(set).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            jail.create_file(format!("migrations/postgres/{name}"), &text)?;
        }
        jail.set_env("TENANT_DB_PASSWORD", "from-the-secret");
        let config = Config::load(Some("avocet.toml".as_ref())).map_err(|e| e.to_string())?;
        assert_eq!(config.lease_timeout, Duration::from_secs(30));
        assert_eq!(config.shutdown_grace, Duration::from_secs(45));
        // Off loopback, the configuration protects itself: tokens and TLS.
        assert_eq!(config.auth.tokens.len(), 3);
        assert!(config.tls.is_some() && !config.insecure);
        let prod = &config.fleets["prod"];
        assert_eq!(prod.tenants.len(), 2);
        assert_eq!(prod.tenants[0].vars["host"], "pg-shard-1");
        // Every tenant's DSN renders from the template, with the fleet's dialect.
        avocet_daemon::Registry::from_config(&config).map_err(|e| e.to_string())?;
        Ok(())
    });
}
