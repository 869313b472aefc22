//! DESIGN.md rule 3: the tenant lock belongs to a guard. It is taken on a pooled session of
//! its own before any work, and released on every path; a session whose release failed is
//! closed, never pooled, so the server frees the lock with it.

use std::time::Duration;

use tracing::Instrument;

use super::report::db_failure;
use crate::{
    dialect::DbError,
    fleet::{PooledSession, Tenant},
    telemetry::fail,
};

/// Takes the tenant lock on a pooled session within `timeout`, runs `work` with that
/// session and how long the lock took, and releases the lock on every path. The session
/// goes back to the pool only when the release succeeded and `work` left it clean; if the
/// future is dropped instead, the session is closed, and the server frees the lock with it.
///
/// The tenant's ticket covers everything `work` may open: the locked session, plus one
/// session per migration where sessions cannot be reset in place (MySQL, SQLite).
///
/// # Errors
/// [`DbError::LockTimeout`] when the lock did not come within `timeout`;
/// [`DbError::Connect`] and the like when the tenant is unreachable. `work` does not run.
pub(crate) async fn under_lock<T>(
    tenant: &Tenant,
    timeout: Duration,
    work: impl AsyncFnOnce(&mut PooledSession, Duration) -> T,
) -> Result<T, DbError> {
    let needs = if tenant.caps().resets_in_place { 1 } else { 2 };
    let _ticket = tenant.admit(needs).await;
    let mut session = tenant.session().await?;
    session.set_clean(false);
    // The lock span lasts as long as the wait.
    let waited = {
        let span = tracing::info_span!(
            "lock",
            avocet.lock.timeout_s = timeout.as_secs_f64(),
            avocet.lock.wait_s = tracing::field::Empty,
        );
        let locking = session.session().lock(timeout);
        match locking.instrument(span.clone()).await {
            Ok(waited) => {
                span.record("avocet.lock.wait_s", waited.as_secs_f64());
                waited
            }
            Err(e) => {
                let code = db_failure(&tenant.id, None, &e).code;
                fail(&span, code.as_str(), &e.to_string());
                // A lock that did not come left the session as it was.
                session.set_clean(matches!(e, DbError::LockTimeout { .. }));
                return Err(e);
            }
        }
    };
    let result = work(&mut session, waited).await;
    match session.session().unlock().await {
        Ok(()) => session.set_clean(true),
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, "releasing the tenant lock: {e}; closing its session");
            session.close().await;
        }
    }
    Ok(result)
}
