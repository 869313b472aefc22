//! Loading and validating configurations.

use super::*;
use crate::model::DialectKind;

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn the_shipped_default_configuration_loads() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/avocet.toml");
        let config = Config::load(Some(&path)).unwrap();
        let demo = &config.fleets["demo"];
        assert_eq!(demo.dialect, DialectKind::Sqlite);
        assert_eq!(demo.tenants.len(), 3);
        assert_eq!(demo.lock_timeout, Duration::from_secs(30));
        Ok(())
    });
}

#[test]
fn the_example_configurations_load_and_build_fleets() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let config = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
            // Paths in the examples are relative to the repository root.
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut config = config;
            for fleet in config.fleets.values_mut() {
                fleet.migrations = root.join(&fleet.migrations);
            }
            crate::fleet::Registry::from_config(&config).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
        assert!(seen >= 2, "expected the postgres and mariadb examples");
        Ok(())
    });
}

#[test]
fn environment_overrides_the_file_and_ignores_the_clients_variables() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "avocet.toml",
            "[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\n",
        )?;
        jail.set_env("AVOCET_LISTEN", "0.0.0.0:7999");
        jail.set_env("AVOCET_INSECURE", "true");
        jail.set_env("AVOCET_FLEETS__DEMO__CONCURRENCY", "3");
        jail.set_env("AVOCET_ADDR", "http://127.0.0.1:7400");
        let config = Config::load(Some(Path::new("avocet.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.listen, "0.0.0.0:7999".parse().unwrap());
        assert_eq!(config.fleets["demo"].concurrency, 3);
        // Unrelated AVOCET_ variables are ignored (with a warning), not fatal.
        jail.set_env("AVOCET_FOO", "1");
        jail.set_env("AVOCET_TOKEN", "secret");
        let config = Config::load(Some(Path::new("avocet.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.listen, "0.0.0.0:7999".parse().unwrap());
        // A known key with a bad nested key is still an error naming it.
        jail.set_env("AVOCET_FLEETS__DEMO__CONCURENCY", "3");
        let err = Config::load(Some(Path::new("avocet.toml"))).unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let file =
            write("[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\nconcurency = 3\n");
        let err = Config::load(Some(file.path())).unwrap_err().to_string();
        assert!(err.contains("concurency"), "{err}");
        Ok(())
    });
}

#[test]
fn a_syntax_error_on_a_dsn_line_does_not_show_its_password() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let file = write(
            "[fleets.demo]\ndialect = \"postgres\"\nmigrations = \"m\"\n\
             tenants = [ { id = \"t\", dsn = \"postgres://postgres:s3cretPW@127.0.0.1:5432/db\" labels = {} } ]\n",
        );
        let err = Config::load(Some(file.path())).unwrap_err().to_string();
        assert!(!err.contains("s3cretPW"), "{err}");
        assert!(err.contains("configuration"), "{err}");
        Ok(())
    });
}

#[test]
fn passwords_come_from_the_environment_not_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "avocet.toml",
            "[fleets.demo]\ndialect = \"postgres\"\nmigrations = \"m\"\n\
             dsn_template = \"postgres://app@db-{id}.internal/t\"\n\
             password_env = \"DEMO_DB_PASSWORD\"\n\
             tenants = [{ id = \"a\" }, { id = \"b\", password_env = \"B_PASSWORD\" }]\n",
        )?;
        jail.set_env("DEMO_DB_PASSWORD", "fleet-pw");
        jail.set_env("B_PASSWORD", "b-pw");
        let config = Config::load(Some(Path::new("avocet.toml"))).map_err(|e| e.to_string())?;
        let demo = &config.fleets["demo"];
        let dsn = |i: usize| demo.tenant_dsn(&demo.tenants[i]);
        assert_eq!(
            dsn(0).as_deref().ok(),
            Some("postgres://app:fleet-pw@db-a.internal/t")
        );
        assert_eq!(
            dsn(1).as_deref().ok(),
            Some("postgres://app:b-pw@db-b.internal/t")
        );
        jail.create_file(
            "unset.toml",
            "[fleets.demo]\ndialect = \"postgres\"\nmigrations = \"m\"\n\
             tenants = [{ id = \"a\", dsn = \"postgres://app@h/t\", \
             password_env = \"SURELY_UNSET_PASSWORD\" }]\n",
        )?;
        let err = Config::load(Some(Path::new("unset.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fleets.demo.tenants[0].dsn"), "{err}");
        assert!(err.contains("SURELY_UNSET_PASSWORD"), "{err}");
        Ok(())
    });
}

#[test]
fn bad_values_name_their_key() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let file = write(
            "[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\n\
             tenants = [{ id = \"a\", dsn = \"sqlite://a.db\" }, { id = \"a\", dsn = \"sqlite://b.db\" }]\n",
        );
        let err = Config::load(Some(file.path())).unwrap_err().to_string();
        assert!(err.contains("fleets.demo.tenants[1].id"), "{err}");
        let file = write("[fleets.demo]\ndialect = \"oracle\"\nmigrations = \"m\"\n");
        let err = Config::load(Some(file.path())).unwrap_err().to_string();
        assert!(err.contains("oracle"), "{err}");
        let file = write(
            "[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\n\
             dsn_template = \"sqlite://{dir}/{id}.db\"\n\
             tenants = [{ id = \"a\", vars = { dir = \"d\" } }, { id = \"b\" }]\n",
        );
        let err = Config::load(Some(file.path())).unwrap_err().to_string();
        assert!(err.contains("fleets.demo.tenants[1].dsn"), "{err}");
        assert!(err.contains("dir"), "{err}");
        assert!(matches!(
            Config::load(Some(Path::new("/nonexistent/avocet.toml"))),
            Err(ConfigError::Missing(_))
        ));
        Ok(())
    });
}

#[test]
fn applied_by_names_the_real_host() {
    // Linux's host name, as gethostname(2) returns it, whether or not HOSTNAME is exported.
    let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        return;
    };
    assert_eq!(
        Config::default().instance_id,
        format!("avocetd@{}", host.trim())
    );
}

#[test]
fn a_dsn_of_another_dialect_is_a_configuration_error_naming_the_tenant() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
        let file = write(&format!(
            "[fleets.pg]\ndialect = \"postgres\"\nmigrations = \"{}\"\n\
             tenants = [{{ id = \"t7\", dsn = \"mysql://root:s3cretPW@127.0.0.1/x\" }}]\n",
            root.display()
        ));
        let config = Config::load(Some(file.path())).unwrap();
        let err = crate::fleet::Registry::from_config(&config)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("\"t7\"") && err.contains("scheme"), "{err}");
        assert!(!err.contains("s3cretPW"), "{err}");
        Ok(())
    });
}

#[test]
fn the_admin_listener_is_on_by_default_and_an_empty_value_turns_it_off() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "avocet.toml",
            "[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\n",
        )?;
        let path = Path::new("avocet.toml");
        let config = Config::load(Some(path)).map_err(|e| e.to_string())?;
        assert_eq!(config.admin_listen, Some("127.0.0.1:9464".parse().unwrap()));
        jail.set_env("AVOCET_ADMIN_LISTEN", "0.0.0.0:9100");
        let config = Config::load(Some(path)).map_err(|e| e.to_string())?;
        assert_eq!(config.admin_listen, Some("0.0.0.0:9100".parse().unwrap()));
        jail.set_env("AVOCET_ADMIN_LISTEN", "");
        let config = Config::load(Some(path)).map_err(|e| e.to_string())?;
        assert_eq!(config.admin_listen, None);
        jail.set_env("AVOCET_ADMIN_LISTEN", "localhost");
        let err = Config::load(Some(path)).unwrap_err().to_string();
        assert!(err.contains("admin_listen"), "{err}");
        Ok(())
    });
    // In the file: "" turns it off; a fleet may opt in to tenant labels; a misspelt key
    // is still an error naming it.
    let config = Config::parse(
        "admin_listen = \"\"\n[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\n\
         metrics_tenant_labels = true\n",
    )
    .unwrap();
    assert_eq!(config.admin_listen, None);
    assert!(config.fleets["demo"].metrics_tenant_labels);
    assert_eq!(config.log_format, crate::config::LogFormat::Pretty);
    let json = Config::parse("log_format = \"json\"\n").unwrap();
    assert_eq!(json.log_format, crate::config::LogFormat::Json);
    let err = Config::parse("log_format = \"xml\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("log_format"), "{err}");
    let err = Config::parse("admin_listn = \"\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin_listn"), "{err}");
}

/// Issue 25, finding 21: `[auth] clients` without `[tls] client_ca` is refused.
#[test]
fn clients_without_a_client_ca_are_refused() {
    let mut config = Config::default();
    config.auth.clients.push(crate::config::ClientConfig {
        name: "ci".into(),
        subject: "CN=ci".into(),
        role: crate::config::Role::Operator,
        fleets: Vec::new(),
    });
    let loopback = "127.0.0.1:0".parse().unwrap();
    let err = config.check_exposure(loopback).unwrap_err();
    assert!(err.to_string().contains("auth.clients"), "{err}");
    config.tls = Some(crate::config::TlsConfig {
        cert: "c.pem".into(),
        key: "k.pem".into(),
        client_ca: Some("ca.pem".into()),
    });
    assert!(config.check_exposure(loopback).is_ok());
}

/// Issue 25, finding 14: a syntax error on a DSN line whose password holds characters the
/// masking cannot follow (a space, `"`, `/`, a parameter) shows none of it.
#[test]
fn a_syntax_error_shows_no_part_of_an_unusual_password() {
    figment::Jail::expect_with(|_| {
        for dsn in [
            r#"postgres://u:CAN ARY/x@h/db"#,
            r#"postgres://u:CAN\"ARY@h/db"#,
            r#"postgres://u@h/db?password='CAN ARY'"#,
            r#"postgres://u@h/db?passw%6Frd=CANARY"#,
        ] {
            let file = write(&format!(
                "[fleets.demo]\ndialect = \"postgres\"\nmigrations = \"m\"\n\
                 tenants = [ {{ id = \"t\", dsn = \"{dsn}\" labels = {{}} }} ]\n"
            ));
            let err = Config::load(Some(file.path())).unwrap_err().to_string();
            assert!(!err.contains("ARY"), "{dsn}: {err}");
        }
        Ok(())
    });
}

/// Issue 25, finding 12: `rollout_retention` is a duration, 90 days unless set, at least
/// an hour.
#[test]
fn rollout_retention_is_a_duration_of_at_least_an_hour() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let default = Config::load(Some(write("").path())).unwrap();
        assert_eq!(default.rollout_retention, Duration::from_secs(90 * 86_400));
        let set = Config::load(Some(write("rollout_retention = \"30days\"\n").path())).unwrap();
        assert_eq!(set.rollout_retention, Duration::from_secs(30 * 86_400));
        for bad in ["\"10m\"", "\"ninety\""] {
            let file = write(&format!("rollout_retention = {bad}\n"));
            let err = Config::load(Some(file.path())).unwrap_err().to_string();
            assert!(err.contains("rollout_retention"), "{bad}: {err}");
        }
        Ok(())
    });
}

/// Issue 30: `set_retention` is a duration, 30 days unless set, at least a second.
#[test]
fn set_retention_is_a_duration_of_at_least_a_second() {
    // Serialised with the test that sets AVOCET_ variables.
    figment::Jail::expect_with(|_| {
        let default = Config::load(Some(write("").path())).unwrap();
        assert_eq!(default.set_retention, Duration::from_secs(30 * 86_400));
        let set = Config::load(Some(write("set_retention = \"7days\"\n").path())).unwrap();
        assert_eq!(set.set_retention, Duration::from_secs(7 * 86_400));
        for bad in ["\"0s\"", "\"a month\"", "30"] {
            let file = write(&format!("set_retention = {bad}\n"));
            let err = Config::load(Some(file.path())).unwrap_err().to_string();
            assert!(err.contains("set_retention"), "{bad}: {err}");
        }
        Ok(())
    });
}
