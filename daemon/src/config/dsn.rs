//! Where a tenant registered through the API may point (issue 25, findings 2, 4, 5, 6
//! and 19). A registered DSN is parsed as the driver parses it (sqlx's own parser, keys
//! and values percent-decoded), then:
//!
//! - it holds no password, in its userinfo or in any parameter however encoded (the
//!   control store would keep it in clear), and carries only allow-listed parameters (no
//!   `host=`, `sslrootcert=`, `socket=`, `options=` or `vfs=`: nothing that names a file,
//!   a socket or another server);
//! - a server's `host:port` matches the fleet's `allowed_hosts` (default: the hosts of the
//!   fleet's configured DSNs), so the fleet's password is never offered to a server an
//!   admin chose;
//! - a SQLite file resolves, decoded and canonicalised, inside the fleet's `sqlite_root`
//!   (required for registration), and is never the control store;
//! - the target (server, database, schema; or file) is no other fleet's tenant's.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{PolicyError, RegistrationError};
use crate::model::DialectKind;

/// A tenant's target: what two tenants must not share across fleets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKey {
    /// A database on a server, and a schema in it for a schema tenant.
    Server {
        /// Lower-cased host name or address, and port.
        host: String,
        /// The database (empty when the DSN names none).
        database: String,
        /// The schema of a schema tenant.
        schema: Option<String>,
    },
    /// A SQLite file, canonicalised as far as it exists.
    File(PathBuf),
}

impl TargetKey {
    /// The target of a DSN of `dialect` (best effort, for tenants already in a fleet:
    /// `None` when it does not parse).
    pub fn of(dialect: DialectKind, dsn: &str, schema: Option<&str>) -> Option<Self> {
        let server = |host: &str, port: u16, database: Option<&str>| Self::Server {
            host: format!("{}:{port}", host.to_ascii_lowercase()),
            database: database.unwrap_or_default().to_owned(),
            schema: schema.map(str::to_owned),
        };
        match dialect {
            DialectKind::Postgres => {
                let o: sqlx::postgres::PgConnectOptions = dsn.parse().ok()?;
                Some(server(o.get_host(), o.get_port(), o.get_database()))
            }
            DialectKind::Mysql => {
                let o: sqlx::mysql::MySqlConnectOptions = dsn.parse().ok()?;
                Some(server(o.get_host(), o.get_port(), o.get_database()))
            }
            DialectKind::Sqlite => {
                let o: sqlx::sqlite::SqliteConnectOptions = dsn.parse().ok()?;
                Some(Self::File(resolve(o.get_filename())?))
            }
        }
    }

    /// True when the two would touch the same tables: one file, or one database where
    /// either is the whole database or both are the same schema.
    pub fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::File(a), Self::File(b)) => a == b,
            (
                Self::Server {
                    host: h1,
                    database: d1,
                    schema: s1,
                },
                Self::Server {
                    host: h2,
                    database: d2,
                    schema: s2,
                },
            ) => h1 == h2 && d1 == d2 && (s1.is_none() || s2.is_none() || s1 == s2),
            _ => false,
        }
    }
}

/// `path` made absolute against the working directory, its longest existing ancestor
/// canonicalised (symbolic links followed) and the rest appended (its file, and
/// directories the first connection creates, may not exist yet); `None` when a part past
/// what exists is `..` or the path cannot be made absolute.
pub(super) fn resolve(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut found) = existing.canonicalize() {
            found.extend(rest.iter().rev());
            return Some(found);
        }
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
    }
}

/// Query parameters a registered DSN may carry, by dialect (decoded names, as the driver
/// reads them); anything else is refused.
fn allowed_parameters(dialect: DialectKind) -> &'static [&'static str] {
    match dialect {
        DialectKind::Postgres => &[
            "sslmode",
            "ssl-mode",
            "application_name",
            "statement-cache-capacity",
        ],
        DialectKind::Mysql => &[
            "sslmode",
            "ssl-mode",
            "charset",
            "collation",
            "statement-cache-capacity",
            "timezone",
            "time-zone",
        ],
        DialectKind::Sqlite => &["mode"],
    }
}

/// The checks on one fleet's registered DSNs ([module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct RegistrationPolicy {
    /// `allowed_hosts` patterns (`host` or `host:port` globs, lower-case), as written.
    pub allowed_hosts: Vec<String>,
    matcher: Option<GlobSet>,
    /// `sqlite_root`, canonical.
    pub sqlite_root: Option<PathBuf>,
    /// The control store's file, canonical, when it is SQLite.
    pub control_store: Option<PathBuf>,
    /// Refuse a registered PostgreSQL tenant's server that asks for its password in
    /// cleartext or as MD5 (`require_scram`).
    pub require_scram: bool,
}

impl RegistrationPolicy {
    /// The policy of `allowed_hosts` patterns, `sqlite_root` and the control store's DSN.
    ///
    /// # Errors
    /// [`PolicyError`] for a pattern that is not a glob, or a `sqlite_root` that is not (and
    /// cannot be made) a directory.
    pub fn new(
        allowed_hosts: Vec<String>,
        sqlite_root: Option<&Path>,
        control_store: &str,
        require_scram: bool,
    ) -> Result<Self, PolicyError> {
        let mut builder = GlobSetBuilder::new();
        for p in &allowed_hosts {
            builder.add(Glob::new(&p.to_ascii_lowercase()).map_err(|source| {
                PolicyError::Pattern {
                    pattern: p.clone(),
                    source,
                }
            })?);
        }
        let matcher = builder.build().map_err(PolicyError::Build)?;
        // Created if missing, as a SQLite tenant's directory is when it first connects.
        let sqlite_root = sqlite_root
            .map(|root| {
                let _ = std::fs::create_dir_all(root);
                std::fs::canonicalize(root)
                    .ok()
                    .filter(|r| r.is_dir())
                    .ok_or_else(|| PolicyError::NotADirectory(root.to_owned()))
            })
            .transpose()?;
        let control_store = match TargetKey::of(DialectKind::Sqlite, control_store, None) {
            Some(TargetKey::File(f)) if control_store.starts_with("sqlite:") => Some(f),
            _ => None,
        };
        Ok(Self {
            allowed_hosts,
            matcher: Some(matcher),
            sqlite_root,
            control_store,
            require_scram,
        })
    }

    /// Checks registered `dsn` of `dialect` (with `schema`); its target when it passes.
    ///
    /// # Errors
    /// [`RegistrationError`] naming the rule it breaks; never the DSN or a password.
    pub fn check(
        &self,
        dialect: DialectKind,
        dsn: &str,
        schema: Option<&str>,
    ) -> Result<TargetKey, RegistrationError> {
        let (scheme, params) = match dialect {
            DialectKind::Sqlite => {
                let rest = dsn
                    .strip_prefix("sqlite://")
                    .or_else(|| dsn.strip_prefix("sqlite:"))
                    .ok_or(RegistrationError::NotSqlite)?;
                ("sqlite", rest.split_once('?').map(|(_, q)| q.to_owned()))
            }
            _ => {
                let url = url::Url::parse(dsn)?;
                if url.password().is_some() {
                    return Err(RegistrationError::Password);
                }
                (dialect.as_str(), url.query().map(str::to_owned))
            }
        };
        for (key, _) in url::form_urlencoded::parse(params.unwrap_or_default().as_bytes()) {
            if key.to_ascii_lowercase().contains("pass") {
                return Err(RegistrationError::Password);
            }
            if !allowed_parameters(dialect).contains(&&*key) {
                return Err(RegistrationError::Parameter {
                    key: bounded(&key).to_string(),
                    scheme,
                    allowed: allowed_parameters(dialect).join(", "),
                });
            }
        }
        let key = TargetKey::of(dialect, dsn, schema).ok_or(RegistrationError::Driver)?;
        match &key {
            TargetKey::Server { host, .. } => self.check_host(dialect, dsn, host)?,
            TargetKey::File(file) => self.check_file(dsn, file)?,
        }
        Ok(key)
    }

    fn check_host(
        &self,
        dialect: DialectKind,
        dsn: &str,
        host: &str,
    ) -> Result<(), RegistrationError> {
        let socket = match dialect {
            DialectKind::Postgres => dsn
                .parse::<sqlx::postgres::PgConnectOptions>()
                .is_ok_and(|o| o.get_socket().is_some()),
            _ => dsn
                .parse::<sqlx::mysql::MySqlConnectOptions>()
                .is_ok_and(|o| o.get_socket().is_some()),
        };
        let named = url::Url::parse(dsn).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()));
        if socket || !named {
            return Err(RegistrationError::NoHost);
        }
        let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let allowed = self
            .matcher
            .as_ref()
            .is_some_and(|m| m.is_match(host) || m.is_match(bare));
        if !allowed {
            return Err(RegistrationError::HostNotAllowed {
                host: bounded(host).to_string(),
                allowed: match self.allowed_hosts.is_empty() {
                    true => "none: set allowed_hosts".to_owned(),
                    false => self.allowed_hosts.join(", "),
                },
            });
        }
        Ok(())
    }

    fn check_file(&self, dsn: &str, file: &Path) -> Result<(), RegistrationError> {
        let Some(root) = &self.sqlite_root else {
            return Err(RegistrationError::NoSqliteRoot);
        };
        if dsn.contains(":memory:") || file.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(RegistrationError::NotAFile);
        }
        if !file.starts_with(root) || file == root {
            return Err(RegistrationError::OutsideRoot { root: root.clone() });
        }
        if self.control_store.as_deref() == Some(file) {
            return Err(RegistrationError::ControlStore);
        }
        Ok(())
    }
}

impl super::FleetConfig {
    /// The checks on the fleet's registered DSNs: `allowed_hosts` (or the hosts of its
    /// configured DSNs and template), `sqlite_root`, `require_scram`, and the control store
    /// at `control_store`.
    ///
    /// # Errors
    /// [`PolicyError`] for a bad pattern or a `sqlite_root` that is not a directory.
    pub fn registration_policy(
        &self,
        control_store: &str,
    ) -> Result<RegistrationPolicy, PolicyError> {
        let hosts = match &self.allowed_hosts {
            Some(h) => h.clone(),
            None => {
                let template = self
                    .dsn_template
                    .as_ref()
                    .map(|t| t.replace("{id}", "x"))
                    .filter(|t| !t.contains('{'));
                let discovery = self.discovery.as_ref().map(|d| d.dsn.clone());
                let mut hosts: Vec<String> = self
                    .tenants
                    .iter()
                    .filter_map(|t| self.tenant_dsn(t).ok())
                    .chain(template)
                    .chain(discovery)
                    .filter_map(|dsn| match TargetKey::of(self.dialect, &dsn, None) {
                        Some(TargetKey::Server { host, .. }) => Some(globset::escape(&host)),
                        _ => None,
                    })
                    .collect();
                hosts.sort();
                hosts.dedup();
                hosts
            }
        };
        RegistrationPolicy::new(
            hosts,
            self.sqlite_root.as_deref(),
            control_store,
            self.require_scram,
        )
    }
}

use crate::model::bounded;

#[cfg(test)]
mod tests {
    use super::*;

    fn pg() -> RegistrationPolicy {
        RegistrationPolicy::new(
            vec!["db-*.internal".into(), "127.0.0.1:5432".into()],
            None,
            "",
            true,
        )
        .unwrap()
    }

    /// Finding 4 and 19: every spelling of a password, and parameters naming files,
    /// sockets or other hosts.
    #[test]
    fn passwords_and_parameters_are_read_as_the_driver_reads_them() {
        let p = pg();
        assert!(
            p.check(
                DialectKind::Postgres,
                "postgres://app@db-1.internal/t1",
                None
            )
            .is_ok()
        );
        assert!(
            p.check(
                DialectKind::Postgres,
                "postgres://app@127.0.0.1:5432/t1?sslmode=require",
                None
            )
            .is_ok()
        );
        for bad in [
            "postgres://app:pw@db-1.internal/t1",
            "postgres://app@db-1.internal/t1?password=pw",
            "postgres://app@db-1.internal/t1?passw%6Frd=pw",
            "postgres://app@db-1.internal/t1?password='pw'",
            "postgres://app@db-1.internal/t1?password=;pw",
            "postgres://app@db-1.internal/t1?sslrootcert=/etc/shadow",
            "postgres://app@db-1.internal/t1?host=/var/run/postgresql",
            "postgres://app@db-1.internal/t1?host=evil.example",
            "postgres://app@db-1.internal/t1?hostaddr=10.0.0.9",
            "postgres://app@db-1.internal/t1?port=7424",
            "postgres://app@db-1.internal/t1?options=-c%20x%3Dy",
            "postgres://app@%2Fvar%2Frun%2Fpostgresql/t1",
        ] {
            assert!(p.check(DialectKind::Postgres, bad, None).is_err(), "{bad}");
        }
        let my = RegistrationPolicy::new(vec!["127.0.0.1".into()], None, "", true).unwrap();
        assert!(
            my.check(DialectKind::Mysql, "mysql://root@127.0.0.1/t", None)
                .is_ok()
        );
        assert!(
            my.check(
                DialectKind::Mysql,
                "mysql://root@127.0.0.1/t?socket=/tmp/x",
                None
            )
            .is_err()
        );
    }

    /// Finding 2: a server the fleet does not use is refused.
    #[test]
    fn hosts_outside_allowed_hosts_are_refused() {
        let p = pg();
        for bad in [
            "postgres://role@127.0.0.1:7424/x",
            "postgres://role@evil.example/x",
            "postgres://role@db-1.internal.evil.example/x",
        ] {
            let err = p.check(DialectKind::Postgres, bad, None).unwrap_err();
            assert!(err.to_string().contains("allowed_hosts"), "{bad}: {err}");
        }
        let none = RegistrationPolicy::new(Vec::new(), None, "", true).unwrap();
        assert!(
            none.check(DialectKind::Postgres, "postgres://a@127.0.0.1/x", None)
                .is_err()
        );
    }

    /// Finding 6: percent-encoding, NUL, other directories, the control store.
    #[test]
    fn sqlite_files_stay_inside_sqlite_root() {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("control.db");
        std::fs::write(&store, "").unwrap();
        let control = format!("sqlite://{}?mode=rwc", store.display());
        let p = RegistrationPolicy::new(Vec::new(), Some(root.path()), &control, true).unwrap();
        let r = root.path().display();
        assert!(
            p.check(
                DialectKind::Sqlite,
                &format!("sqlite://{r}/t1.db?mode=rwc"),
                None
            )
            .is_ok()
        );
        for bad in [
            format!("sqlite://{r}/%2e%2e/%2e%2e/etc/passwd"),
            format!("sqlite://{r}/../x.db"),
            format!("sqlite://{r}/new-dir/../../x.db"),
            format!("sqlite://{r}/a%00b.db"),
            format!("sqlite://{r}/control.db"),
            format!("sqlite://{r}/t1.db?vfs=unix-none"),
            "sqlite:///proc/self/environ".to_owned(),
            "sqlite://t1.db?mode=rwc".to_owned(),
            "sqlite::memory:".to_owned(),
        ] {
            assert!(p.check(DialectKind::Sqlite, &bad, None).is_err(), "{bad}");
        }
        let unrooted = RegistrationPolicy::new(Vec::new(), None, "", true).unwrap();
        assert!(
            unrooted
                .check(DialectKind::Sqlite, &format!("sqlite://{r}/t1.db"), None)
                .is_err()
        );
    }

    #[test]
    fn targets_overlap_on_one_file_or_database() {
        let a = TargetKey::of(DialectKind::Postgres, "postgres://u@H:5432/db", Some("s1")).unwrap();
        let b = TargetKey::of(DialectKind::Postgres, "postgres://v:pw@h/db", None).unwrap();
        let c = TargetKey::of(DialectKind::Postgres, "postgres://u@h/db", Some("s2")).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&c) && !a.overlaps(&c));
    }
}
