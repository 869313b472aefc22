//! A scripted fake database for the engine's unit tests: it keeps a history table, a log and
//! a "schema" (the statements that committed) in memory, with the transaction semantics the
//! engine relies on (`BEGIN`…`COMMIT` all or nothing; outside a transaction each statement
//! on its own), a tenant lock held by one session and freed with it, and faults to order:
//! a statement that fails, a parse error that fails a whole request first, a `COMMIT` that
//! fails or drops the connection, a lock lost after some statements, a lock held elsewhere.
//! It behaves as the dialect it is given says ([`crate::model::Capabilities`]).

use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use async_trait::async_trait;

use crate::{
    dialect::{Database, DbError, History, Item, ItemError, LockCheck, Session},
    model::{
        DialectKind, ForeignRow, HistoryRecord, LockGuard, MigrationKey, RecordWrite, SetFormat,
    },
};

/// The lock check the fake hands out, followed by the holding session's id (a check may run
/// on another session of the tenant, as MySQL's does).
const CHECK: &str = "SELECT fake_lock_held_by ";

/// Faults to inject.
#[derive(Debug, Default, Clone)]
pub(super) struct Faults {
    /// A statement containing this text fails with a database error when it runs.
    pub(super) fail_statement: Option<&'static str>,
    /// A request holding a statement with this text fails before anything of it runs, the
    /// error placed at that text (PostgreSQL's parse of a whole request).
    pub(super) parse_error: Option<&'static str>,
    /// `COMMIT` fails (a deferred constraint): the server rolls back.
    pub(super) fail_commit: bool,
    /// The connection drops at `COMMIT`: the server rolls back with the session.
    pub(super) drop_at_commit: bool,
    /// The lock is lost once this many script statements have run.
    pub(super) lose_lock_after: Option<usize>,
    /// Another session holds the lock.
    pub(super) lock_held_elsewhere: bool,
    /// History writes fail.
    pub(super) fail_history: bool,
    /// Releasing the lock fails.
    pub(super) fail_unlock: bool,
    /// A statement containing this text gives up waiting for a lock (`busy_attempts` times,
    /// then runs), as under a lock guard while another session holds the table.
    pub(super) busy: Option<&'static str>,
    /// How many attempts of the `busy` statement give up; `usize::MAX` for all.
    pub(super) busy_attempts: usize,
    /// A `CREATE INDEX CONCURRENTLY` that gives up leaves an INVALID index behind.
    pub(super) leaves_invalid_index: bool,
}

/// What the fake database holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) faults: Faults,
    /// The history table, once made.
    pub(super) history: Option<BTreeMap<MigrationKey, RecordWrite>>,
    /// The log table, in order.
    pub(super) log: Vec<RecordWrite>,
    /// Script statements that took effect, in order.
    pub(super) schema: Vec<String>,
    /// Script statements run so far (committed or not).
    pub(super) statements_run: usize,
    /// The session holding the tenant lock.
    pub(super) lock_holder: Option<u64>,
    /// Sessions opened, and closed (or dropped) so far.
    pub(super) opened: u64,
    pub(super) closed: u64,
    /// Calls of `Session::run`: requests, as the engine asks for them.
    pub(super) runs: usize,
    /// `Item::Reset`s run.
    pub(super) resets: usize,
    /// Lock guard statements run (`SET …`).
    pub(super) guards: Vec<String>,
    /// Attempts of the `busy` statement so far.
    pub(super) busy_seen: usize,
    /// An INVALID index left by a failed `CREATE INDEX CONCURRENTLY`.
    pub(super) invalid_index: bool,
    /// Leftovers dropped before a retry.
    pub(super) dropped: usize,
}

/// A fake tenant database of dialect `kind`, on server `host`.
#[derive(Clone)]
pub(super) struct FakeDb {
    kind: DialectKind,
    host: Option<String>,
    state: Arc<Mutex<State>>,
}

impl FakeDb {
    pub(super) fn new(kind: DialectKind, faults: Faults) -> Self {
        let state = State {
            faults,
            ..State::default()
        };
        Self {
            kind,
            host: None,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The same, on server `host` (for the lock-wait budget).
    pub(super) fn on_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    /// The database's state now.
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Database for FakeDb {
    fn kind(&self) -> DialectKind {
        self.kind
    }

    fn host(&self) -> Option<String> {
        self.host.clone()
    }

    fn namespace(&self) -> Option<String> {
        None
    }

    async fn bind(&self, _session: &mut dyn Session) -> Result<(), DbError> {
        Ok(())
    }

    async fn connect(&self) -> Result<Box<dyn Session>, DbError> {
        let id = {
            let mut s = self.state();
            s.opened += 1;
            s.opened
        };
        Ok(Box::new(FakeSession {
            id,
            db: self.clone(),
            tx: None,
            broken: false,
        }))
    }
}

/// What a transaction has done so far, kept apart until `COMMIT`.
#[derive(Debug, Default)]
struct Tx {
    history: Vec<RecordWrite>,
    log: Vec<RecordWrite>,
    schema: Vec<String>,
    aborted: bool,
}

struct FakeSession {
    id: u64,
    db: FakeDb,
    tx: Option<Tx>,
    /// The connection dropped: every call fails.
    broken: bool,
}

/// A database error (not a lost connection), as a server would send it.
#[derive(Debug)]
struct FakeError(String);

/// What went wrong with one item.
enum Failure {
    Error(sqlx::Error),
    /// It gave up waiting for a lock.
    Busy,
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Error(e)
    }
}

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FakeError {}

impl sqlx::error::DatabaseError for FakeError {
    fn message(&self) -> &str {
        &self.0
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some("XX000".into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

fn db_error(message: &str) -> sqlx::Error {
    sqlx::Error::Database(Box::new(FakeError(message.to_owned())))
}

fn lost() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "the server closed the connection",
    ))
}

impl FakeSession {
    fn records(&self, s: &State) -> Vec<HistoryRecord> {
        s.history
            .iter()
            .flat_map(BTreeMap::values)
            .map(|r| HistoryRecord {
                version: r.version.clone(),
                name: r.name.clone(),
                checksum: r.checksum.clone(),
                down_checksum: r.down_checksum.clone(),
                status: r.status,
                batch: r.batch,
                statements_done: r.statements_done,
                statements_total: r.statements_total,
                error: r.error.clone(),
                direction: r.direction,
                no_transaction: Some(r.no_transaction),
            })
            .collect()
    }

    /// Runs one item; `Err` with the server's error.
    fn item(&mut self, s: &mut State, item: &Item<'_>) -> Result<(), Failure> {
        let in_tx = self.tx.as_ref().is_some_and(|t| !t.aborted);
        match item {
            Item::Reset => s.resets += 1,
            Item::Sql("BEGIN") => self.tx = Some(Tx::default()),
            Item::Sql("ROLLBACK") => self.tx = None,
            Item::Sql("COMMIT") => {
                let tx = self.tx.take().unwrap_or_default();
                if s.faults.drop_at_commit {
                    self.broken = true;
                    return Err(lost().into());
                }
                if s.faults.fail_commit {
                    return Err(db_error("deferred constraint violated").into());
                }
                if !tx.aborted {
                    apply(s, tx);
                }
            }
            Item::Sql(sql) if sql.starts_with(CHECK) => {
                let holder = sql[CHECK.len()..].parse().ok();
                if s.lock_holder.is_none() || s.lock_holder != holder {
                    return Err(db_error("the tenant lock is no longer held").into());
                }
            }
            Item::Sql(sql) if sql.starts_with("SET ") => s.guards.push((*sql).to_owned()),
            Item::Sql(sql) => {
                if let Some(fail) = s.faults.fail_statement
                    && sql.contains(fail)
                {
                    return Err(db_error(&format!("statement failed: {sql}")).into());
                }
                if let Some(busy) = s.faults.busy
                    && sql.contains(busy)
                    && s.busy_seen < s.faults.busy_attempts
                {
                    s.busy_seen += 1;
                    s.invalid_index |= s.faults.leaves_invalid_index;
                    return Err(Failure::Busy);
                }
                s.statements_run += 1;
                if s.faults.lose_lock_after == Some(s.statements_run) {
                    s.lock_holder = None;
                }
                match &mut self.tx {
                    Some(tx) if in_tx => tx.schema.push((*sql).to_owned()),
                    _ => s.schema.push((*sql).to_owned()),
                }
            }
            Item::Record(rec, _) | Item::Progress(rec) | Item::Log(rec) => {
                if s.faults.fail_history || s.history.is_none() {
                    return Err(db_error("history table unavailable").into());
                }
                let (row, log) = match item {
                    Item::Record(..) => (true, true),
                    Item::Progress(_) => (true, false),
                    _ => (false, true),
                };
                let rec = (*rec).clone();
                match &mut self.tx {
                    Some(tx) if in_tx => {
                        if row {
                            tx.history.push(rec.clone());
                        }
                        if log {
                            tx.log.push(rec);
                        }
                    }
                    _ => apply(
                        s,
                        Tx {
                            history: if row { vec![rec.clone()] } else { vec![] },
                            log: if log { vec![rec] } else { vec![] },
                            ..Tx::default()
                        },
                    ),
                }
            }
        }
        Ok(())
    }
}

fn apply(s: &mut State, tx: Tx) {
    let history = s.history.get_or_insert_with(BTreeMap::new);
    for r in tx.history {
        history.insert(r.version.clone(), r);
    }
    s.log.extend(tx.log);
    s.schema.extend(tx.schema);
}

#[async_trait]
impl Session for FakeSession {
    async fn read_history(&mut self) -> Result<History, DbError> {
        let s = self.db.state();
        Ok(match s.history.is_some() {
            true => History::Current(self.records(&s)),
            false => History::Missing,
        })
    }

    async fn prepare_history(&mut self) -> Result<Vec<HistoryRecord>, DbError> {
        let mut s = self.db.state();
        s.history.get_or_insert_with(BTreeMap::new);
        Ok(self.records(&s))
    }

    async fn read_foreign(&mut self, _: SetFormat) -> Result<Option<Vec<ForeignRow>>, DbError> {
        Ok(None)
    }

    async fn run(&mut self, items: &[Item<'_>]) -> Result<(), ItemError> {
        let db = self.db.clone();
        let mut s = db.state();
        s.runs += 1;
        if self.broken {
            return Err(ItemError {
                index: 0,
                at: None,
                source: lost(),
                lock_timeout: false,
            });
        }
        if let Some(bad) = s.faults.parse_error {
            let found = items.iter().enumerate().find_map(|(i, item)| match item {
                Item::Sql(sql) => sql.find(bad).map(|at| (i, sql[..at].chars().count())),
                _ => None,
            });
            if let Some((index, at)) = found {
                return Err(ItemError {
                    index,
                    at: Some(at),
                    source: db_error(&format!("syntax error at or near \"{bad}\"")),
                    lock_timeout: false,
                });
            }
        }
        for (index, item) in items.iter().enumerate() {
            if let Err(failure) = self.item(&mut s, item) {
                if let Some(tx) = &mut self.tx {
                    tx.aborted = true;
                }
                let (source, lock_timeout) = match failure {
                    Failure::Error(e) => (e, false),
                    Failure::Busy => (db_error("canceling statement due to lock timeout"), true),
                };
                return Err(ItemError {
                    index,
                    at: None,
                    source,
                    lock_timeout,
                });
            }
        }
        Ok(())
    }

    async fn lock(&mut self, timeout: Duration) -> Result<Duration, DbError> {
        let mut s = self.db.state();
        if s.faults.lock_held_elsewhere || s.lock_holder.is_some_and(|h| h != self.id) {
            return Err(DbError::LockTimeout {
                lock: "fake".into(),
                waited_ms: timeout.as_millis() as u64,
            });
        }
        s.lock_holder = Some(self.id);
        Ok(Duration::ZERO)
    }

    fn lock_check(&self) -> Option<LockCheck> {
        let s = self.db.state();
        (self.db.kind.caps().lock_can_be_lost && s.lock_holder == Some(self.id)).then(|| {
            LockCheck {
                sql: format!("{CHECK}{}", self.id),
                lock: "fake".into(),
            }
        })
    }

    async fn unlock(&mut self) -> Result<(), DbError> {
        let mut s = self.db.state();
        if s.faults.fail_unlock || s.lock_holder != Some(self.id) || self.broken {
            return Err(DbError::LockNotHeld {
                lock: "fake".into(),
            });
        }
        s.lock_holder = None;
        Ok(())
    }

    fn guard_sql(&self, guard: &LockGuard, local: bool) -> Vec<String> {
        let scope = if local { "LOCAL " } else { "" };
        guard
            .lock_timeout()
            .map(|d| format!("SET {scope}lock_timeout {}", d.as_millis()))
            .into_iter()
            .collect()
    }

    async fn holders(&mut self) -> String {
        "pid 7 (report, idle in transaction, transaction open 8 s)".into()
    }

    async fn clean_leftover(&mut self, statement: &str) -> Result<Option<String>, DbError> {
        let mut s = self.db.state();
        if !(s.invalid_index && statement.contains("CONCURRENTLY")) {
            return Ok(None);
        }
        s.invalid_index = false;
        s.dropped += 1;
        Ok(Some("DROP INDEX CONCURRENTLY IF EXISTS i".into()))
    }

    async fn place(
        &mut self,
        _target: &crate::dialect::Target,
    ) -> Result<crate::dialect::Place, DbError> {
        Ok(crate::dialect::Place {
            schema: None,
            database: None,
        })
    }

    fn bind(&mut self, _identity: Arc<dyn std::any::Any + Send + Sync>) -> Result<(), DbError> {
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), DbError> {
        match self.broken {
            true => Err(DbError::Connect { source: lost() }),
            false => Ok(()),
        }
    }

    async fn close(self: Box<Self>) {}
}

impl Drop for FakeSession {
    /// The server ends the session: its lock and its open transaction go with it.
    fn drop(&mut self) {
        let mut s = self.db.state();
        s.closed += 1;
        if s.lock_holder == Some(self.id) {
            s.lock_holder = None;
        }
    }
}
