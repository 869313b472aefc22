//! Creating and dropping the tenant databases: PostgreSQL and MariaDB databases named
//! `avb_<runid>_<suffix>`, SQLite files under the run's scratch directory. Every name is
//! registered when created, so [`Admin::cleanup`] can drop whatever is left on any path.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use anyhow::Context;
use futures::StreamExt as _;
use sqlx::{Connection as _, MySqlPool, PgPool, mysql::MySqlPoolOptions, postgres::PgPoolOptions};

/// Concurrent `CREATE DATABASE` statements (more does not help: each waits for checkpoints).
const CREATE_PARALLELISM: usize = 2;
/// Concurrent `DROP DATABASE` statements.
const DROP_PARALLELISM: usize = 4;

/// Admin connections to the servers, and the registry of what this run created.
pub(crate) struct Admin {
    /// Pool on the PostgreSQL `postgres` database (stats, sampler, DDL).
    pub(crate) pg: PgPool,
    /// Pool on MariaDB, if it answered.
    pub(crate) mysql: Option<MySqlPool>,
    pg_base: String,
    mysql_base: String,
    run_id: String,
    created_pg: Mutex<BTreeSet<String>>,
    created_mysql: Mutex<BTreeSet<String>>,
}

/// A PostgreSQL fleet: database names in tenant order.
pub(crate) struct PgFleet {
    /// Database names.
    pub(crate) names: Vec<String>,
}

impl Admin {
    /// Connects to both servers (MariaDB is optional: the large scenario skips it if absent).
    pub(crate) async fn connect(
        pg_url: &str,
        mysql_url: &str,
        run_id: &str,
    ) -> anyhow::Result<Admin> {
        let pg_base = pg_url.trim_end_matches('/').to_string();
        let pg = PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&format!("{pg_base}/postgres"))
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {pg_base}"))?;
        let mysql_base = mysql_url.trim_end_matches('/').to_string();
        let mysql = match MySqlPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&mysql_base)
            .await
        {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "note: MariaDB at {mysql_base} is not answering ({e}); its rows are skipped"
                );
                None
            }
        };
        Ok(Admin {
            pg,
            mysql,
            pg_base,
            mysql_base,
            run_id: run_id.to_string(),
            created_pg: Mutex::default(),
            created_mysql: Mutex::default(),
        })
    }

    /// `avb_<runid>_<suffix>`.
    pub(crate) fn db_name(&self, suffix: &str) -> String {
        format!("avb_{}_{suffix}", self.run_id)
    }

    /// `LIKE` pattern matching every database of this run.
    pub(crate) fn like_pattern(&self) -> String {
        format!("avb\\_{}\\_%", self.run_id)
    }

    /// DSN of a PostgreSQL database, with `sslmode=require` when `tls`.
    pub(crate) fn pg_dsn(&self, db: &str, tls: bool) -> String {
        let tls = if tls { "?sslmode=require" } else { "" };
        format!("{}/{db}{tls}", self.pg_base)
    }

    /// The MariaDB server URL, without a database.
    pub(crate) fn mysql_url(&self) -> &str {
        &self.mysql_base
    }

    /// DSN of a MariaDB database.
    pub(crate) fn mysql_dsn(&self, db: &str) -> String {
        format!("{}/{db}", self.mysql_base)
    }

    /// Creates `n` fresh databases `avb_<runid>_1..=n` (copies of `template` if given).
    pub(crate) async fn create_pg_fleet(
        &self,
        n: usize,
        template: Option<&str>,
    ) -> anyhow::Result<PgFleet> {
        let names: Vec<String> = (1..=n).map(|i| self.db_name(&i.to_string())).collect();
        let template = template
            .map(|t| format!(" TEMPLATE \"{t}\""))
            .unwrap_or_default();
        let stmts: Vec<(String, String)> = names
            .iter()
            .map(|db| {
                (
                    db.clone(),
                    format!("CREATE DATABASE \"{db}\"{template} STRATEGY FILE_COPY"),
                )
            })
            .collect();
        let mut results = futures::stream::iter(stmts)
            .map(|(db, sql)| async move {
                self.created_pg.lock().expect("registry").insert(db.clone());
                sqlx::query(&sql)
                    .execute(&self.pg)
                    .await
                    .with_context(|| format!("creating database {db}"))
                    .map(|_| ())
            })
            .buffer_unordered(CREATE_PARALLELISM);
        let mut first_err = None;
        while let Some(r) = results.next().await {
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        drop(results);
        let fleet = PgFleet { names };
        if let Some(e) = first_err {
            self.drop_pg(&fleet.names).await;
            return Err(e);
        }
        Ok(fleet)
    }

    /// Creates one database (a template or a single tenant).
    pub(crate) async fn create_pg_db(&self, db: &str) -> anyhow::Result<()> {
        self.created_pg
            .lock()
            .expect("registry")
            .insert(db.to_string());
        sqlx::query(&format!("CREATE DATABASE \"{db}\" STRATEGY FILE_COPY"))
            .execute(&self.pg)
            .await
            .with_context(|| format!("creating database {db}"))?;
        Ok(())
    }

    /// Drops databases (forcing out any session); errors are printed, not returned, because
    /// this runs on cleanup paths.
    pub(crate) async fn drop_pg(&self, names: &[String]) {
        let mut results = futures::stream::iter(names.iter().cloned())
            .map(|db| async move {
                let r = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .execute(&self.pg)
                    .await;
                (db, r)
            })
            .buffer_unordered(DROP_PARALLELISM);
        while let Some((db, r)) = results.next().await {
            match r {
                Ok(_) => {
                    self.created_pg.lock().expect("registry").remove(&db);
                }
                Err(e) => eprintln!("warning: cannot drop database {db}: {e}"),
            }
        }
    }

    /// Creates a MariaDB database.
    pub(crate) async fn create_mysql_db(&self, db: &str) -> anyhow::Result<()> {
        let pool = self.mysql.as_ref().context("MariaDB is not answering")?;
        self.created_mysql
            .lock()
            .expect("registry")
            .insert(db.to_string());
        sqlx::query(&format!("CREATE DATABASE `{db}`"))
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Drops a MariaDB database (errors printed).
    pub(crate) async fn drop_mysql_db(&self, db: &str) {
        let Some(pool) = &self.mysql else { return };
        match sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`"))
            .execute(pool)
            .await
        {
            Ok(_) => {
                self.created_mysql.lock().expect("registry").remove(db);
            }
            Err(e) => eprintln!("warning: cannot drop MariaDB database {db}: {e}"),
        }
    }

    /// Waits (up to 10 s) until no session is connected to `db`, so it can be a template.
    pub(crate) async fn wait_idle(&self, db: &str) -> anyhow::Result<()> {
        for _ in 0..500 {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                    .bind(db)
                    .fetch_one(&self.pg)
                    .await?;
            if n == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("sessions on {db} did not end")
    }

    /// Counts rows of `table` in a PostgreSQL database, on a connection of its own.
    pub(crate) async fn pg_count(&self, db: &str, table: &str) -> anyhow::Result<i64> {
        let mut conn = sqlx::PgConnection::connect(&self.pg_dsn(db, false)).await?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok(n)
    }

    /// Counts rows of `table` in a MariaDB database.
    pub(crate) async fn mysql_count(&self, db: &str, table: &str) -> anyhow::Result<i64> {
        let pool = self.mysql.as_ref().context("MariaDB is not answering")?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM `{db}`.{table}"))
            .fetch_one(pool)
            .await?;
        Ok(n)
    }

    /// Drops everything this run registered, then anything else named like this run (a
    /// database whose creation was interrupted).
    pub(crate) async fn cleanup(&self) {
        let pg: Vec<String> = self
            .created_pg
            .lock()
            .expect("registry")
            .iter()
            .cloned()
            .collect();
        self.drop_pg(&pg).await;
        let left: Vec<String> =
            sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
                .bind(self.like_pattern())
                .fetch_all(&self.pg)
                .await
                .unwrap_or_default();
        self.drop_pg(&left).await;
        let my: Vec<String> = self
            .created_mysql
            .lock()
            .expect("registry")
            .iter()
            .cloned()
            .collect();
        for db in my {
            self.drop_mysql_db(&db).await;
        }
        if let Some(pool) = &self.mysql {
            let left: Vec<String> = sqlx::query_scalar(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?",
            )
            .bind(self.like_pattern())
            .fetch_all(pool)
            .await
            .unwrap_or_default();
            for db in left {
                self.drop_mysql_db(&db).await;
            }
        }
    }
}

/// SQLite tenant files `<dir>/t<i>.db`, and their DSNs (`mode=rwc`, so a missing file is
/// created).
pub(crate) fn sqlite_paths(dir: &Path, n: usize) -> Vec<PathBuf> {
    (1..=n).map(|i| dir.join(format!("t{i}.db"))).collect()
}

/// DSN of a SQLite file.
pub(crate) fn sqlite_dsn(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}
