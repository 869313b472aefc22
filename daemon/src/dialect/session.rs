//! One generic sqlx session for every dialect: [`SqlxDatabase`] connects (the one
//! `connect`), [`SqlxSession`] is the [`Session`] the engine uses. What differs between
//! databases comes from the [`Dialect`] they are instantiated with.

use std::{any::Any, collections::BTreeSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::OnceCell;

use super::{
    Database, DbError, History, LockCheck, RELEASE_TIMEOUT, Session, Target,
    batch::{Item, ItemError, pack},
    error_position,
    history::{HistorySql, RECORD_STATEMENTS, VersionColumn, record_from_text},
    shared_sql::shared,
    spec::{Dialect, Place, poll_lock},
};
use crate::model::{DialectKind, ForeignRow, HistoryRecord, LockGuard, SchemaModel, SetFormat};

/// What the engine needs of a driver's connection, for any of sqlx's three. Implemented once,
/// for every connection type whose `&mut` is an executor.
#[async_trait]
pub(super) trait Conn: sqlx::Connection + Send + 'static {
    /// Every row of `sql` (one statement, simple protocol), each column read as optional
    /// text.
    async fn text_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, sqlx::Error>;
    /// Runs `sql` (several `;`-separated statements) in one request over the simple
    /// protocol; on failure, the statements completed before the failing one.
    async fn run_request(&mut self, sql: &str) -> Result<u64, (u64, sqlx::Error)>;
    /// Runs `sql` (one or more statements) and discards what it returns.
    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.run_request(sql).await.map(|_| ()).map_err(|(_, e)| e)
    }
}

#[async_trait]
impl<C> Conn for C
where
    C: sqlx::Connection + Send + 'static,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
{
    async fn text_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        use sqlx::Row;
        let rows = sqlx::Executor::fetch_all(&mut *self, sql).await?;
        rows.iter()
            .map(|row| (0..row.len()).map(|i| row.try_get(i)).collect())
            .collect()
    }

    async fn run_request(&mut self, sql: &str) -> Result<u64, (u64, sqlx::Error)> {
        let mut done = 0;
        // A query without arguments goes over the simple protocol.
        let mut results = sqlx::Executor::fetch_many(&mut *self, sql);
        while let Some(item) = results.next().await {
            match item {
                Ok(sqlx::Either::Left(_)) => done += 1,
                Ok(sqlx::Either::Right(_)) => {}
                Err(source) => return Err((done, source)),
            }
        }
        Ok(done)
    }
}

/// One tenant's database for dialect `D`. An idle tenant holds its target and server
/// address; connect options are parsed when a session opens, and what the first session
/// learns (where the history tables and the lock are) is shared by the later ones.
pub(super) struct SqlxDatabase<D: Dialect> {
    target: Target,
    host: Option<String>,
    identity: OnceCell<Arc<Identity<D>>>,
}

/// What every session of one tenant shares, resolved on its first connection.
struct Identity<D: Dialect> {
    /// Where the tenant is: its schema or database.
    place: Place,
    sql: Arc<HistorySql>,
    lock: D::LockId,
    lock_name: String,
    /// [`Dialect::reset`], then `session_init`, one statement each, `;`-joined; empty
    /// where sessions are not reset in place.
    reset: String,
    /// Statements in `reset`.
    reset_statements: u64,
    /// Avocet's own tables in the tenant (the history table and its log), left out of its
    /// schema ([`Session::introspect`]).
    own_tables: Vec<String>,
}

impl<D: Dialect> SqlxDatabase<D> {
    /// The database of `target`. Nothing connects.
    ///
    /// # Errors
    /// [`DbError::Dsn`] when the DSN does not parse for `D`.
    pub(super) fn new(target: Target) -> Result<Self, DbError> {
        let host = D::host(&D::options(&target)?);
        Ok(Self {
            target,
            host,
            identity: OnceCell::new(),
        })
    }

    async fn resolve(&self, conn: &mut D::Conn) -> Result<Arc<Identity<D>>, DbError> {
        let place = D::locate(conn, &self.target).await?;
        Ok(self.identity_at(&place))
    }

    /// The tenant's identity once its place is known: the history SQL of its schema (or
    /// database), its lock, and its reset, which ends by putting its schema first on the
    /// `search_path` (so a session shared by the schemas of one database migrates in the
    /// schema it is bound to).
    fn identity_at(&self, place: &Place) -> Arc<Identity<D>> {
        let table = &self.target.history_table;
        let column = VersionColumn::of(&self.target);
        let schema = place.schema.as_deref();
        let create_schema = self.target.schema.is_some();
        let sql = shared((D::KIND, schema.unwrap_or(""), table, column), || {
            HistorySql::new::<D>(schema, table, create_schema, column)
        });
        let lock = D::lock_id(place, &self.target);
        let search_path = self
            .target
            .schema
            .as_ref()
            .map(|s| format!("SET search_path TO {}", super::spec::quote(s, D::QUOTE)));
        let reset: Vec<&str> = match D::KIND.caps().resets_in_place {
            true => D::reset()
                .iter()
                .copied()
                .chain(self.target.session_init.iter().map(String::as_str))
                .chain(search_path.as_deref())
                .collect(),
            false => Vec::new(),
        };
        Arc::new(Identity {
            place: place.clone(),
            sql,
            lock_name: D::lock_name(&lock),
            lock,
            reset_statements: reset.len() as u64,
            own_tables: vec![table.clone(), format!("{table}_log")],
            reset: reset.join(";\n"),
        })
    }
}

#[async_trait]
impl<D: Dialect> Database for SqlxDatabase<D> {
    fn kind(&self) -> DialectKind {
        D::KIND
    }

    fn host(&self) -> Option<String> {
        self.host.clone()
    }

    fn namespace(&self) -> Option<String> {
        self.target.namespace()
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn not_created(&self) -> bool {
        D::not_created(&self.target)
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        D::before_connect(&self.target)?;
        let options = D::options(&self.target)?;
        let connect = sqlx::ConnectOptions::connect(&options);
        let mut conn = match tokio::time::timeout(self.target.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                return Err(D::connect_error(DbError::Connect { source }, &self.target));
            }
            Err(_) => {
                return Err(DbError::ConnectTimeout {
                    timeout_ms: self.target.connect_timeout.as_millis() as u64,
                });
            }
        };
        for stmt in &self.target.session_init {
            conn.execute(stmt)
                .await
                .map_err(DbError::query("running session_init"))?;
        }
        let identity = self
            .identity
            .get_or_try_init(|| self.resolve(&mut conn))
            .await?
            .clone();
        Ok(Box::new(SqlxSession::<D> {
            conn,
            identity,
            lock: D::LockState::default(),
            server_id: None,
        }))
    }

    async fn cancel(&self, id: u64) -> Result<(), DbError> {
        let Some(sql) = D::cancel_sql(id) else {
            return Err(DbError::Unsupported(
                "cancelling a statement on this database",
            ));
        };
        let options = D::options(&self.target)?;
        let connect = sqlx::ConnectOptions::connect(&options);
        let mut conn = match tokio::time::timeout(self.target.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => return Err(DbError::Connect { source }),
            Err(_) => {
                return Err(DbError::ConnectTimeout {
                    timeout_ms: self.target.connect_timeout.as_millis() as u64,
                });
            }
        };
        let done = conn
            .execute(&sql)
            .await
            .map_err(DbError::query("cancelling a statement"));
        let _ = tokio::time::timeout(RELEASE_TIMEOUT, sqlx::Connection::close(conn)).await;
        done
    }

    async fn bind(&self, session: &mut dyn Session) -> Result<(), DbError> {
        let identity = self.identity(session).await?;
        session.bind(identity)
    }

    async fn identity(
        &self,
        session: &mut dyn Session,
    ) -> Result<Arc<dyn Any + Send + Sync>, DbError> {
        Ok(match self.identity.get() {
            Some(identity) => identity.clone(),
            None => {
                let place = session.place(&self.target).await?;
                self.identity
                    .get_or_init(|| async { self.identity_at(&place) })
                    .await
                    .clone()
            }
        })
    }
}

/// An open connection to one tenant, with the fleet's session settings applied.
pub(super) struct SqlxSession<D: Dialect> {
    conn: D::Conn,
    identity: Arc<Identity<D>>,
    lock: D::LockState,
    /// [`Session::server_id`], once read.
    server_id: Option<u64>,
}

impl<D: Dialect> SqlxSession<D> {
    /// Every history row read with `select`, ascending by version.
    async fn select(&mut self, select: &str) -> Result<Vec<HistoryRecord>, sqlx::Error> {
        let rows = self.conn.text_rows(select).await?;
        let mut records = rows
            .into_iter()
            .map(|row| record_from_text(row).map_err(|e| sqlx::Error::Decode(e.into())))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_unstable_by(|a, b| a.version.cmp(&b.version));
        Ok(records)
    }

    /// The columns the history table has (an older layout).
    async fn present_columns(&mut self) -> Result<BTreeSet<String>, sqlx::Error> {
        let sql = self.identity.sql.columns.clone();
        let rows = self.conn.text_rows(&sql).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect())
    }

    /// The statements `item` renders to.
    fn render(&self, item: &Item<'_>) -> Result<(String, u64), sqlx::Error> {
        Ok(match item {
            Item::Sql(sql) => ((*sql).to_owned(), 1),
            Item::Reset => (self.identity.reset.clone(), self.identity.reset_statements),
            Item::Record(rec, _) | Item::Progress(rec) | Item::Log(rec) => {
                let sql = &self.identity.sql;
                sql.writable(&rec.version).map_err(|e| match e {
                    DbError::Query { source, .. } => source,
                    e => sqlx::Error::Protocol(e.to_string()),
                })?;
                match item {
                    Item::Record(_, timing) => (sql.record_sql(rec, *timing), RECORD_STATEMENTS),
                    Item::Progress(_) => (sql.row_sql(rec), 1),
                    _ => (sql.log_sql(rec), 1),
                }
            }
        })
    }
}

#[async_trait]
impl<D: Dialect> Session for SqlxSession<D> {
    async fn read_history(&mut self) -> Result<History, DbError> {
        // One round trip; a missing table is the answer "nothing applied", not an error. A
        // table of an older layout is read as it is (two more round trips) and left as it is.
        let sql = Arc::clone(&self.identity.sql);
        let read = DbError::query("reading the history table");
        match self.select(&sql.select).await {
            Ok(records) => Ok(History::Current(records)),
            Err(e) if sql.is_missing_table(&e) => Ok(History::Missing),
            Err(e) if sql.is_missing_column(&e) => {
                let present = self.present_columns().await.map_err(read)?;
                let read = DbError::query("reading the history table");
                self.select(&sql.select_present(&present))
                    .await
                    .map(History::Older)
                    .map_err(read)
            }
            Err(e) => Err(read(e)),
        }
    }

    async fn prepare_history(&mut self) -> Result<Vec<HistoryRecord>, DbError> {
        let sql = Arc::clone(&self.identity.sql);
        let read = DbError::query("reading the history table");
        match self.select(&sql.select).await {
            Ok(records) => Ok(records),
            Err(e) if sql.is_missing_table(&e) => {
                self.conn
                    .execute(&sql.create_sql())
                    .await
                    .map_err(DbError::query("creating the history table"))?;
                Ok(Vec::new())
            }
            Err(e) if sql.is_missing_column(&e) => {
                let present = self.present_columns().await.map_err(read)?;
                for upgrade in sql.upgrades(&present) {
                    self.conn
                        .execute(&upgrade)
                        .await
                        .map_err(DbError::query("upgrading the history table's layout"))?;
                }
                tracing::info!(layout = super::history::LAYOUT, "history table upgraded");
                let read = DbError::query("reading the history table");
                self.select(&sql.select).await.map_err(read)
            }
            Err(e) => Err(read(e)),
        }
    }

    async fn create_history(&mut self) -> Result<(), DbError> {
        let sql = self.identity.sql.create_sql();
        self.conn
            .execute(&sql)
            .await
            .map_err(DbError::query("creating the history table"))
    }

    async fn read_foreign(&mut self, tool: SetFormat) -> Result<Option<Vec<ForeignRow>>, DbError> {
        let Some(select) = super::foreign::select_sql::<D>(tool) else {
            return Ok(Some(Vec::new()));
        };
        let read = DbError::query("reading the other tool's history table");
        let rows = match self.conn.text_rows(&select).await {
            Ok(rows) => rows,
            Err(e) if self.identity.sql.is_missing_table(&e) => return Ok(None),
            Err(e) => return Err(read(e)),
        };
        Ok(Some(rows.into_iter().map(super::foreign::row).collect()))
    }

    async fn run(&mut self, items: &[Item<'_>]) -> Result<(), ItemError> {
        let mut rendered = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let r = self.render(item).map_err(|source| ItemError {
                index,
                at: None,
                source,
                lock_timeout: false,
            })?;
            rendered.push(r);
        }
        for request in pack(&rendered, D::KIND.caps().batch_limit) {
            if let Err((done, source)) = self.conn.run_request(&request.text).await {
                let (index, at) = request.locate(done, error_position(&source));
                let lock_timeout = D::is_lock_timeout(&source);
                return Err(ItemError {
                    index,
                    at,
                    source,
                    lock_timeout,
                });
            }
        }
        Ok(())
    }

    async fn introspect(&mut self) -> Result<SchemaModel, DbError> {
        let identity = Arc::clone(&self.identity);
        super::introspect::read(
            D::KIND,
            &mut self.conn,
            identity.place.schema.as_deref(),
            &identity.own_tables,
        )
        .await
    }

    async fn lock(&mut self, timeout: Duration) -> Result<Duration, DbError> {
        let identity = Arc::clone(&self.identity);
        let mut state = (&mut self.conn, &mut self.lock);
        let waited = poll_lock(&identity.lock_name, timeout, &mut state, |(conn, lock)| {
            Box::pin(D::try_lock(&mut **conn, &identity.lock, &mut **lock))
        })
        .await?;
        D::after_lock(&mut self.conn).await?;
        Ok(waited)
    }

    fn lock_check(&self) -> Option<LockCheck> {
        D::lock_check(&self.identity.lock, &self.lock).map(|sql| LockCheck {
            sql,
            lock: self.identity.lock_name.clone(),
        })
    }

    async fn unlock(&mut self) -> Result<(), DbError> {
        let reset = self.identity.reset.clone();
        D::unlock(&mut self.conn, &self.identity.lock, &mut self.lock, &reset).await
    }

    fn guard_sql(&self, guard: &LockGuard, local: bool) -> Vec<String> {
        D::guard_sql(guard.lock_timeout(), guard.statement_timeout, local)
    }

    async fn holders(&mut self) -> String {
        let Some(sql) = D::HOLDERS else {
            return String::new();
        };
        match self.conn.text_rows(sql).await {
            Ok(rows) => rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten())
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!("listing the sessions holding locks: {e}");
                String::new()
            }
        }
    }

    async fn clean_leftover(&mut self, statement: &str) -> Result<Option<String>, DbError> {
        let Some((check, drop)) = D::leftover(statement) else {
            return Ok(None);
        };
        let context = "dropping what a statement that gave up on a lock left behind";
        let found = self
            .conn
            .text_rows(&check)
            .await
            .map_err(DbError::query(context))?;
        if found.is_empty() {
            return Ok(None);
        }
        self.conn
            .execute(&drop)
            .await
            .map_err(DbError::query(context))?;
        Ok(Some(drop))
    }

    async fn place(&mut self, target: &Target) -> Result<Place, DbError> {
        // A schema tenant of this session's database: its schema, and the database the
        // session already knows, with no round trip.
        if let (Some(schema), Some(database)) = (&target.schema, &self.identity.place.database) {
            return Ok(Place {
                schema: Some(schema.clone()),
                database: Some(database.clone()),
            });
        }
        D::locate(&mut self.conn, target).await
    }

    async fn read_histories(
        &mut self,
        tenants: &[Arc<dyn Any + Send + Sync>],
    ) -> Result<Option<Vec<History>>, DbError> {
        let mut places = Vec::with_capacity(tenants.len());
        for identity in tenants {
            let Some(identity) = identity.downcast_ref::<Identity<D>>() else {
                return Err(DbError::Unsupported(
                    "a session of one dialect reading a tenant of another",
                ));
            };
            let Some(schema) = identity.place.schema.as_deref() else {
                return Ok(None);
            };
            places.push((schema, &*identity.sql));
        }
        super::many::read::<D>(&mut self.conn, &places)
            .await
            .map_err(DbError::query(
                "reading the history tables of several tenants",
            ))
    }

    fn bind(&mut self, identity: Arc<dyn Any + Send + Sync>) -> Result<(), DbError> {
        self.identity = identity.downcast::<Identity<D>>().map_err(|_| {
            DbError::Unsupported("a session of one dialect bound to a tenant of another")
        })?;
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), DbError> {
        sqlx::Connection::ping(&mut self.conn)
            .await
            .map_err(|source| DbError::Connect { source })
    }

    async fn server_id(&mut self) -> Option<u64> {
        if self.server_id.is_none()
            && let Some(sql) = D::SERVER_ID
        {
            match self.conn.text_rows(sql).await {
                Ok(rows) => {
                    self.server_id = rows
                        .into_iter()
                        .next()
                        .and_then(|r| r.into_iter().next().flatten())
                        .and_then(|id| id.trim().parse().ok());
                }
                Err(e) => tracing::debug!("reading the session's server id: {e}"),
            }
        }
        self.server_id
    }

    async fn close(self: Box<Self>) {
        // Dropped (socket closed) if the server does not answer the goodbye.
        let close = sqlx::Connection::close(self.conn);
        let _ = tokio::time::timeout(RELEASE_TIMEOUT, close).await;
    }
}
