//! Each tenant's pool of sessions (deadpool's managed pool over the dialect's sessions),
//! created on first use and drawing every connection from the shared [`Budget`].
//!
//! deadpool rather than sqlx's own pool: one pool per tenant must share one budget across
//! thousands of tenants and close another pool's idle connection to make room, which needs
//! connection creation and closing in the engine's hands (a custom manager), pools that cost
//! nothing until used, and sessions whose state (a held lock, a half-run migration) decides
//! whether they may go back at all.

use std::{sync::Arc, time::Duration};

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};

use super::budget::{Budget, OpenPermit};
use crate::dialect::{Database, DbError, Session};

/// Sessions one tenant's pool keeps at most (a migrating session and a concurrent read, or
/// MySQL's lock session and its migration's session).
const MAX_PER_TENANT: usize = 4;

/// Sessions a pool shared by the schema tenants of one database keeps at most; the
/// connection budget (`max_connections_per_host`) bounds what is open at once anyway.
const MAX_SHARED: usize = 64;

/// Where a tenant's sessions come from: a pool of its own, or one shared with every schema
/// tenant of the same database, server and credentials (issue: thousands of schemas need not
/// open thousands of connections). The pool is made on first use.
pub(crate) struct PoolSlot {
    pool: std::sync::OnceLock<Pool>,
    /// Opens the pool's connections: the tenant's database, or the shared database's
    /// (without a schema).
    db: Arc<dyn Database>,
    /// True when tenants share it, so each checkout is bound to its tenant.
    pub(crate) shared: bool,
}

impl PoolSlot {
    /// A pool of one tenant's own, opening connections with `db`.
    pub(crate) fn own(db: Arc<dyn Database>) -> Arc<Self> {
        Arc::new(Self {
            pool: std::sync::OnceLock::new(),
            db,
            shared: false,
        })
    }

    /// A pool shared by the tenants of one database, opening connections with `db`.
    pub(crate) fn shared(db: Arc<dyn Database>) -> Arc<Self> {
        Arc::new(Self {
            pool: std::sync::OnceLock::new(),
            db,
            shared: true,
        })
    }

    /// The pool, made on first use within `budget`.
    pub(crate) fn get(&self, budget: &Arc<Budget>) -> &Pool {
        let max = if self.shared {
            MAX_SHARED
        } else {
            MAX_PER_TENANT
        };
        self.pool
            .get_or_init(|| new_pool(self.db.clone(), budget.clone(), max))
    }
}

/// An idle session used again after this long is pinged first.
const PING_AFTER: Duration = Duration::from_secs(1);

/// One open connection and its place in the budget.
pub(crate) struct Conn {
    session: Box<dyn Session>,
    _permit: OpenPermit,
}

impl Conn {
    /// Closes the connection cleanly (its budget place is freed when this returns).
    pub(crate) async fn close(self) {
        self.session.close().await;
    }
}

/// Opens a tenant's connections within the budget and checks idle ones before reuse.
pub(crate) struct Manager {
    db: Arc<dyn Database>,
    host: Option<String>,
    budget: Arc<Budget>,
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = DbError;

    async fn create(&self) -> Result<Conn, DbError> {
        let permit = self.budget.open(self.host.as_deref()).await;
        let session = self.db.connect().await;
        if session.is_err() {
            self.budget.connection_closed();
        }
        Ok(Conn {
            session: session?,
            _permit: permit,
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<DbError> {
        if metrics.last_used() >= PING_AFTER {
            conn.session.ping().await.map_err(RecycleError::Backend)?;
        }
        Ok(())
    }
}

/// A tenant's pool.
pub(crate) type Pool = managed::Pool<Manager>;

/// The pools a fleet's schema tenants share, one per database (keyed by DSN), kept while
/// some tenant holds it.
#[derive(Default)]
pub(crate) struct SharedPools {
    by_dsn: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<PoolSlot>>>,
}

impl SharedPools {
    /// The pool of the database `base` names (a target without a schema), made when no
    /// tenant holds it.
    ///
    /// # Errors
    /// [`DbError::Dsn`] and the like when `base` is unusable.
    pub(crate) fn get(
        &self,
        base: crate::dialect::Target,
        kind: crate::model::DialectKind,
    ) -> Result<Arc<PoolSlot>, DbError> {
        let mut map = self
            .by_dsn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = map.get(&base.dsn).and_then(std::sync::Weak::upgrade) {
            return Ok(slot);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let dsn = base.dsn.clone();
        let slot = PoolSlot::shared(Arc::from(crate::dialect::open(kind, base)?));
        map.insert(dsn, Arc::downgrade(&slot));
        Ok(slot)
    }
}

/// Builds a pool of at most `max` sessions; nothing connects until a session is asked for.
fn new_pool(db: Arc<dyn Database>, budget: Arc<Budget>, max: usize) -> Pool {
    let host = db.host();
    let manager = Manager {
        db,
        host: host.clone(),
        budget: budget.clone(),
    };
    let pool = managed::Pool::builder(manager)
        .max_size(max)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime and no timeouts always builds");
    budget.register(host, pool.clone());
    pool
}

/// A session taken from a tenant's pool. It goes back to the pool when dropped only while
/// it is clean; a session that holds the tenant lock, is part way through a migration, or
/// cannot be reset is closed instead, so no state of one use reaches the next.
pub(crate) struct PooledSession {
    conn: Option<Object<Manager>>,
    clean: bool,
    /// Set once the session could not be returned to its state after connecting: it is
    /// closed when dropped, whatever `clean` says.
    poisoned: bool,
    budget: Arc<Budget>,
}

impl PooledSession {
    /// Takes a session from `pool`, opening one within the budget if none is idle.
    ///
    /// # Errors
    /// The connection error when a new session cannot be opened.
    pub(crate) async fn get(pool: &Pool, budget: &Arc<Budget>) -> Result<Self, DbError> {
        let conn = pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            _ => DbError::Connect {
                source: sqlx::Error::PoolClosed,
            },
        })?;
        Ok(Self {
            conn: Some(conn),
            clean: true,
            poisoned: false,
            budget: budget.clone(),
        })
    }

    /// The session.
    pub(crate) fn session(&mut self) -> &mut dyn Session {
        let conn = self.conn.as_mut().expect("present until dropped or closed");
        conn.session.as_mut()
    }

    /// Marks the session dirty (it holds a lock, a migration is running on it) or clean
    /// again (released, reset); only a clean session returns to the pool.
    pub(crate) fn set_clean(&mut self, clean: bool) {
        self.clean = clean;
    }

    /// Marks the session as not reusable: it is closed when dropped.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Closes the session instead of returning it to the pool.
    pub(crate) async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            Object::take(conn).close().await;
            self.budget.connection_closed();
        }
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.clean && !self.poisoned {
            // Back to the pool first, then wake any open waiting for room to find it idle.
            drop(conn);
            self.budget.connection_closed();
        } else {
            // Dropping the connection closes its socket: the server ends the session, and
            // with it any lock or transaction it held.
            tracing::warn!("closing a session dropped while it held a lock or a migration");
            drop(Object::take(conn));
            self.budget.connection_closed();
        }
    }
}
