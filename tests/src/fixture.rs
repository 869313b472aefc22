//! Tenant databases made for one test and dropped after it, and introspection of them.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use avocet_daemon::{DialectKind, TenantConfig};
use futures::StreamExt;
use sqlx::{AnyConnection, Connection, Row};

pub(crate) fn pg_url() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub(crate) fn mysql_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

const START_PG: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
const START_MARIADB: &str =
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd";

pub(crate) async fn admin(dialect: DialectKind) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    let (url, how) = match dialect {
        DialectKind::Postgres => (format!("{}/postgres", pg_url()), START_PG),
        DialectKind::Mysql => (mysql_url(), START_MARIADB),
        DialectKind::Sqlite => bail!("sqlite has no server"),
    };
    let conn = tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(&url)).await;
    match conn {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => bail!("{dialect} is not answering at {url}: {e}\nstart it with: {how}"),
        Err(_) => bail!("{dialect} did not answer at {url} within 5 s\nstart it with: {how}"),
    }
}

/// A copy of a sample migration set that a test may edit.
pub struct MigrationCopy {
    dir: tempfile::TempDir,
}

impl MigrationCopy {
    /// Copies `migrations/<dialect>` of this repository.
    pub fn of(dialect: DialectKind) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        for entry in std::fs::read_dir(sample_dir(dialect))? {
            let entry = entry?;
            std::fs::copy(entry.path(), dir.path().join(entry.file_name()))?;
        }
        Ok(Self { dir })
    }

    /// An empty set, for a test that writes its own files.
    pub fn empty() -> anyhow::Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces) a file in the set.
    pub fn write(&self, file: &str, text: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join(file), text)?;
        Ok(())
    }

    /// Reads a file of the set.
    pub fn read(&self, file: &str) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.dir.path().join(file))?)
    }

    /// The file whose name starts with `prefix` and ends with `.up.sql`.
    pub fn up_file(&self, prefix: &str) -> anyhow::Result<String> {
        for entry in std::fs::read_dir(self.dir.path())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.ends_with(".up.sql") {
                return Ok(name);
            }
        }
        bail!("no up file starting with {prefix}")
    }
}

/// `migrations/<dialect>` of this repository.
pub fn sample_dir(dialect: DialectKind) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect.as_str())
}

/// `names` as an SQL list of string literals, `'a', 'b'` (test-made names, no quotes in them).
pub(crate) fn sql_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tenant databases of one dialect, dropped when the value is dropped.
pub struct Fleet {
    /// The dialect.
    pub dialect: DialectKind,
    /// Tenant configurations (`t00`, `t01`, …).
    pub tenants: Vec<TenantConfig>,
    databases: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Fleet {
    /// The directory of a SQLite fleet's files (its daemon's `sqlite_root`).
    pub fn sqlite_dir(&self) -> Option<&Path> {
        self._dir.as_ref().map(tempfile::TempDir::path)
    }

    /// `n` new PostgreSQL databases.
    pub async fn postgres(n: usize) -> anyhow::Result<Self> {
        Self::server(DialectKind::Postgres, n).await
    }

    /// `n` new MariaDB/MySQL databases.
    pub async fn mysql(n: usize) -> anyhow::Result<Self> {
        Self::server(DialectKind::Mysql, n).await
    }

    /// `n` new SQLite files in a temporary directory.
    pub async fn sqlite(n: usize) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir()?;
        let tenants = (0..n)
            .map(|i| TenantConfig {
                id: format!("t{i:02}"),
                dsn: format!("sqlite://{}/t{i:02}.db?mode=rwc", dir.path().display()),
                schema: None,
                labels: [("shard".to_owned(), (i % 2).to_string())].into(),
                vars: Default::default(),
                password_env: None,
                password_file: None,
            })
            .collect();
        Ok(Self {
            dialect: DialectKind::Sqlite,
            tenants,
            databases: Vec::new(),
            _dir: Some(dir),
        })
    }

    /// One PostgreSQL database holding `n` tenants, one schema each (schema-per-tenant).
    pub async fn postgres_schemas(n: usize) -> anyhow::Result<Self> {
        let mut fleet = Self::server(DialectKind::Postgres, 1).await?;
        let dsn = fleet.tenants[0].dsn.clone();
        fleet.tenants = (0..n)
            .map(|i| TenantConfig {
                id: format!("s{i:02}"),
                dsn: dsn.clone(),
                schema: Some(format!("tenant_{i:02}")),
                labels: Default::default(),
                vars: Default::default(),
                password_env: None,
                password_file: None,
            })
            .collect();
        Ok(fleet)
    }

    async fn server(dialect: DialectKind, n: usize) -> anyhow::Result<Self> {
        let mut conn = admin(dialect).await?;
        let prefix = format!("avk_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut fleet = Self {
            dialect,
            tenants: Vec::new(),
            databases: Vec::new(),
            _dir: None,
        };
        let base = match dialect {
            DialectKind::Postgres => pg_url(),
            _ => mysql_url(),
        };
        for i in 0..n {
            let db = format!("{prefix}_{i:02}");
            sqlx::raw_sql(&format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("creating {db}"))?;
            fleet.databases.push(db.clone());
            fleet.tenants.push(TenantConfig {
                id: format!("t{i:02}"),
                dsn: format!("{base}/{db}"),
                schema: None,
                labels: [("shard".to_owned(), (i % 2).to_string())].into(),
                vars: Default::default(),
                password_env: None,
                password_file: None,
            });
        }
        Ok(fleet)
    }

    /// The server databases behind the tenants (none for SQLite).
    pub fn databases(&self) -> &[String] {
        &self.databases
    }

    /// Sessions `avocetd` has open on this fleet's databases right now, read from the
    /// server (`pg_stat_activity` by application name; MariaDB's process list by database).
    pub async fn server_sessions(&self) -> anyhow::Result<i64> {
        let list = sql_list(&self.databases);
        let sql = match self.dialect {
            DialectKind::Postgres => format!(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE application_name = 'avocetd' AND datname IN ({list})"
            ),
            DialectKind::Mysql => {
                format!("SELECT COUNT(*) FROM information_schema.processlist WHERE db IN ({list})")
            }
            DialectKind::Sqlite => bail!("sqlite has no server"),
        };
        let mut conn = admin(self.dialect).await?;
        let n: i64 = sqlx::query(&sql).fetch_one(&mut conn).await?.try_get(0)?;
        conn.close().await?;
        Ok(n)
    }

    /// Transactions committed in the first PostgreSQL database of the fleet so far
    /// (`pg_stat_database.xact_commit`), read once no other session is connected to it: a
    /// backend's counts reach the statistics for sure when it exits.
    pub async fn commits(&self) -> anyhow::Result<i64> {
        ensure!(
            self.dialect == DialectKind::Postgres,
            "commits are read on PostgreSQL"
        );
        let db = self.databases.first().context("a server fleet")?;
        let mut conn = admin(self.dialect).await?;
        for _ in 0..100 {
            let others: i64 = sqlx::query(&format!(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            ))
            .fetch_one(&mut conn)
            .await?
            .try_get(0)?;
            if others == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let sql = format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'");
        let n: i64 = sqlx::query(&sql).fetch_one(&mut conn).await?.try_get(0)?;
        conn.close().await?;
        Ok(n)
    }

    /// Tenant ids in order.
    pub fn ids(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.id.clone()).collect()
    }

    /// A connection to tenant `i`, with its schema (if any) on the `search_path`.
    pub async fn connect(&self, i: usize) -> anyhow::Result<AnyConnection> {
        let tenant = &self.tenants[i];
        let mut conn = AnyConnection::connect(&tenant.dsn).await?;
        if let Some(schema) = &tenant.schema {
            sqlx::raw_sql(&format!("SET search_path TO {schema}"))
                .execute(&mut conn)
                .await?;
        }
        Ok(conn)
    }

    /// Runs SQL on tenant `i`.
    pub async fn exec(&self, i: usize, sql: &str) -> anyhow::Result<()> {
        let mut conn = self.connect(i).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    async fn names(&self, i: usize, sql: &str) -> anyhow::Result<BTreeSet<String>> {
        let mut conn = self.connect(i).await?;
        let rows = sqlx::query(sql).fetch_all(&mut conn).await?;
        conn.close().await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
            .collect()
    }

    /// Kind of schema object, for [`Fleet::objects`].
    fn catalog_query(&self, kind: &str) -> String {
        match (self.dialect, kind) {
            (DialectKind::Postgres, "index") => {
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()".into()
            }
            (DialectKind::Postgres, "trigger") => "SELECT DISTINCT trigger_name::text FROM \
                 information_schema.triggers WHERE trigger_schema = current_schema()"
                .into(),
            (DialectKind::Postgres, "function") => "SELECT routine_name::text FROM \
                 information_schema.routines WHERE routine_schema = current_schema()"
                .into(),
            (DialectKind::Postgres, t) => format!(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = '{t}'"
            ),
            (DialectKind::Mysql, "index") => "SELECT DISTINCT CAST(index_name AS CHAR) FROM \
                 information_schema.statistics WHERE table_schema = DATABASE()"
                .into(),
            (DialectKind::Mysql, "trigger") => "SELECT CAST(trigger_name AS CHAR) FROM \
                 information_schema.triggers WHERE trigger_schema = DATABASE()"
                .into(),
            (DialectKind::Mysql, t) => format!(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = '{t}'"
            ),
            (DialectKind::Sqlite, "BASE TABLE") => "SELECT name FROM sqlite_master WHERE \
                 type = 'table' AND name NOT LIKE 'sqlite_%'"
                .into(),
            (DialectKind::Sqlite, "VIEW") => {
                "SELECT name FROM sqlite_master WHERE type = 'view'".into()
            }
            (DialectKind::Sqlite, t) => {
                format!("SELECT name FROM sqlite_master WHERE type = '{t}'")
            }
        }
    }

    /// Names of the tenant's schema objects: `BASE TABLE`, `VIEW`, `index`, `trigger`
    /// (and `function` on PostgreSQL), read from the database's own catalog.
    pub async fn objects(&self, i: usize, kind: &str) -> anyhow::Result<BTreeSet<String>> {
        self.names(i, &self.catalog_query(kind)).await
    }

    /// Column names of `table`.
    pub async fn columns(&self, i: usize, table: &str) -> anyhow::Result<BTreeSet<String>> {
        let sql = match self.dialect {
            DialectKind::Postgres => format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
            DialectKind::Mysql => format!(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
            DialectKind::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        };
        self.names(i, &sql).await
    }

    /// `(version, status, statements_done)` of every history row, by version.
    pub async fn history(&self, i: usize) -> anyhow::Result<Vec<(i64, String, i64)>> {
        let mut conn = self.connect(i).await?;
        let rows = sqlx::query(
            "SELECT version, status, statements_done FROM avocet_migrations ORDER BY version",
        )
        .fetch_all(&mut conn)
        .await?;
        conn.close().await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// `(version, status)` of every history row of tenant `i`, the version read as text
    /// whatever the column's type, ordered as versions order (part by part, numerically,
    /// repeatables last).
    pub async fn history_text(&self, i: usize) -> anyhow::Result<Vec<(String, String)>> {
        let text = match self.dialect {
            DialectKind::Mysql => "CHAR",
            DialectKind::Postgres | DialectKind::Sqlite => "TEXT",
        };
        let mut conn = self.connect(i).await?;
        let sql = format!("SELECT CAST(version AS {text}), status FROM avocet_migrations");
        let rows = sqlx::query(&sql).fetch_all(&mut conn).await?;
        conn.close().await?;
        let mut rows = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<anyhow::Result<Vec<(String, String)>>>()?;
        let parts = |v: &str| -> Vec<u64> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
        // Repeatables (`R__<description>`) after the numbered versions, as Avocet runs them.
        rows.sort_by_key(|(v, _)| (v.starts_with("R__"), parts(v), v.clone()));
        Ok(rows)
    }

    /// How many log rows have `status` for `version`.
    pub async fn log_count(&self, i: usize, version: i64, status: &str) -> anyhow::Result<i64> {
        let mut conn = self.connect(i).await?;
        let sql = format!(
            "SELECT COUNT(*) FROM avocet_migrations_log WHERE version = {version} \
             AND status = '{status}'"
        );
        let n: i64 = sqlx::query(&sql).fetch_one(&mut conn).await?.try_get(0)?;
        conn.close().await?;
        Ok(n)
    }

    /// One text value from tenant `i`.
    pub async fn scalar(&self, i: usize, sql: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.connect(i).await?;
        let v = sqlx::query(sql).fetch_optional(&mut conn).await?;
        conn.close().await?;
        Ok(match v {
            Some(row) => row.try_get::<Option<String>, _>(0)?,
            None => None,
        })
    }
}

/// Databases one fleet's drop removes at once, each on its own session (well under the
/// servers' connection limits while other tests run).
const DROPS_AT_ONCE: usize = 16;

impl Drop for Fleet {
    fn drop(&mut self) {
        if self.databases.is_empty() {
            return;
        }
        let dialect = self.dialect;
        let databases = std::mem::take(&mut self.databases);
        // A thread with its own runtime: Drop cannot await, and may run inside a runtime.
        // The drops run at once, each on its own session: PostgreSQL 15 ends every `DROP
        // DATABASE` with an immediate checkpoint it waits for, and drops waiting together
        // share one (10 databases: 19 s one after another, 2.2 s at once, on the 2 cores).
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let drops = databases.into_iter().map(|db| async move {
                    let sql = match dialect {
                        DialectKind::Postgres => {
                            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")
                        }
                        _ => format!("DROP DATABASE IF EXISTS {db}"),
                    };
                    let mut conn = admin(dialect).await?;
                    sqlx::raw_sql(&sql).execute(&mut conn).await?;
                    conn.close().await?;
                    anyhow::Ok(())
                });
                let results: Vec<_> = futures::stream::iter(drops)
                    .buffer_unordered(DROPS_AT_ONCE)
                    .collect()
                    .await;
                results.into_iter().collect::<anyhow::Result<()>>()
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test databases: {e:#}");
        }
    }
}
