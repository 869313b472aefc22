//! DESIGN.md rule 2: a step outside a transaction (a `no-transaction` file, any MySQL
//! script) runs statement by statement, with a `running` row written first and its
//! progress recorded as statements finish, so a crash leaves a visible, repairable state.
//! The tenant lock is checked before every statement: one whose lock is gone stops before
//! it, and its row says how far it got. The session's lock guard is set before the `running`
//! row: a statement that gives up waiting for a lock changed nothing, so what it left behind
//! (an INVALID index) is dropped and that statement alone runs again (`super::guard`).

use std::time::{Duration, Instant};

use super::{
    guard::Retries,
    record::{Recorder, StepOutcome},
};
use crate::{
    dialect::{DbError, Item, ItemError, Session, Timing},
    model::{Capabilities, RecordStatus},
};

/// A `running` row's progress is written after a statement once this long has passed since
/// the last write: slow statements (DDL on big tables, where a crash matters) are recorded
/// one by one, while a flood of quick ones (a large data file) costs one write per
/// interval, not one per statement.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Runs `r`'s step statement by statement on `session` and records it, first returning the
/// session to its state after connecting when `reset`.
///
/// A script that fails is `Ok` with status `Failed`, recorded in the history table with the
/// statements done.
///
/// # Errors
/// [`DbError::Query`] when the history table cannot be written or the connection was lost
/// (the `running` row stays: a crash-like state, visible and repairable);
/// [`DbError::LockLost`] when the lock was found gone before a statement, which did not run
/// (the row says `failed`, with the statements done).
pub(super) async fn run(
    session: &mut dyn Session,
    r: &Recorder<'_>,
    caps: Capabilities,
    reset: bool,
    retries: &mut Retries<'_>,
) -> Result<StepOutcome, DbError> {
    let statements = match r.statements() {
        Ok(s) => s,
        Err(e) => return record_failure(session, r, 0, &e).await,
    };
    if reset {
        session
            .run(&[Item::Reset])
            .await
            .map_err(|e| DbError::query("resetting the session")(e.source))?;
    }
    // The guard first, on the session, with the `running` row: one request.
    let guard = session.guard_sql(&r.guard(), false);
    let running = r.record(RecordStatus::Running, 0, None);
    let mut first: Vec<Item<'_>> = guard.iter().map(|s| Item::Sql(s)).collect();
    first.push(Item::Record(&running, Timing::Known));
    session.run(&first).await.map_err(|e| {
        DbError::query("setting the lock guard and writing the history table")(e.source)
    })?;
    let mut recorded = Instant::now();
    let check = r.meta.lock_check.as_ref().map(|c| c.sql.as_str());
    for (i, stmt) in statements.iter().enumerate() {
        if r.meta.flight.cancelled() {
            // The shutdown grace is over: no statement starts after the cancel (one that
            // ended before it came, or that a cancel does not fail). The row says how far
            // it got.
            let message = format!(
                "stopped before {} at the end of the daemon's shutdown grace",
                r.label(i, "", None)
            );
            return record_failure(session, r, i as i64, &message).await;
        }
        loop {
            // The lock check joins the statement's request where that keeps the statement
            // outside a transaction, and goes alone before it otherwise.
            let mut items = Vec::with_capacity(2);
            if let Some(check) = check {
                if caps.lock_check_joins {
                    items.push(Item::Sql(check));
                } else if let Err(e) = session.run(&[Item::Sql(check)]).await {
                    return lock_lost_before(session, r, i, &e).await;
                }
            }
            items.push(Item::Sql(stmt));
            let Err(e) = session.run(&items).await else {
                break;
            };
            if e.connection_lost() {
                // The `running` row stays: a crash-like state, visible and repairable.
                return Err(DbError::query("running the migration")(e.source));
            }
            if e.index + 1 < items.len() {
                return lock_lost_before(session, r, i, &e).await;
            }
            if r.meta.flight.cancelled() {
                // Outside a transaction what ran stays: recorded `failed` with the
                // statements done, for a repair, and said to be the daemon's doing.
                let message = format!(
                    "{}: cancelled on the server at the end of the daemon's shutdown grace: {}",
                    r.label(i, stmt, e.at),
                    e.source
                );
                return record_failure(session, r, i as i64, &message).await;
            }
            if !e.lock_timeout {
                let message = format!("{}: {}", r.label(i, stmt, e.at), e.source);
                return record_failure(session, r, i as i64, &message).await;
            }
            let note = session
                .clean_leftover(stmt)
                .await?
                .map(|dropped| format!("cleaned up before the retry: {dropped}"));
            if !retries.again(session, r.step, i, note).await {
                let message = retries.gave_up(&r.label(i, "", None));
                let mut outcome = record_failure(session, r, i as i64, &message).await?;
                outcome.gave_up_on_lock = true;
                return Ok(outcome);
            }
        }
        if recorded.elapsed() >= PROGRESS_EVERY {
            let progress = r.record(RecordStatus::Running, i as i64 + 1, None);
            write(session, Item::Progress(&progress)).await?;
            recorded = Instant::now();
        }
    }
    let done = r.done();
    write(session, Item::Record(&done, Timing::Known)).await?;
    Ok(r.outcome(r.done_status(), r.total, None))
}

/// Runs one history write.
async fn write(session: &mut dyn Session, item: Item<'_>) -> Result<(), DbError> {
    session
        .run(&[item])
        .await
        .map_err(|e| DbError::query("writing the history table")(e.source))
}

/// Records that the lock was found gone before statement `index` (0-based), which did not
/// run, and returns [`DbError::LockLost`]. The `running` row becomes `failed` with the
/// statements done, so the tenant waits for a repair rather than running the rest.
async fn lock_lost_before(
    session: &mut dyn Session,
    r: &Recorder<'_>,
    index: usize,
    error: &ItemError,
) -> Result<StepOutcome, DbError> {
    let lost = r.meta.lock_lost(&error.source);
    let statement = r.label(index, "", None);
    let message = format!("before {statement}: {lost}");
    record_failure(session, r, index as i64, &message).await?;
    Err(lost)
}

/// Records a failed script.
///
/// - A transaction that rolled back left nothing behind. For an `up`, the row becomes
///   `failed` with `statements_done = 0`, and the next apply retries it. For a `down`, the
///   row (restored by the rollback) stays `applied`, and only the log keeps the failure.
/// - A failure outside a transaction may have left part of the script behind (a
///   `CREATE INDEX CONCURRENTLY` that fails leaves an invalid index), so the row becomes
///   `failed` with its progress and blocks the tenant until someone repairs it.
///
/// # Errors
/// [`DbError::Query`] when the history table cannot be written.
pub(super) async fn record_failure(
    session: &mut dyn Session,
    r: &Recorder<'_>,
    done: i64,
    error: &str,
) -> Result<StepOutcome, DbError> {
    let failed = r.record(RecordStatus::Failed, done, Some(error.to_owned()));
    let item = match r.failure_writes_row() {
        true => Item::Record(&failed, Timing::Known),
        false => Item::Log(&failed),
    };
    write(session, item).await?;
    Ok(r.outcome(RecordStatus::Failed, done, Some(error.to_owned())))
}
