//! DESIGN.md rules 1 and 5: the one transaction runner. A group of transactional steps (one
//! step in the default mode, all of a tenant's in grouped mode) runs as the session's
//! reset, `BEGIN`, each step's statements followed by its history row and log row, the lock
//! check and `COMMIT`: one request for any group under the dialect's batch limit, one
//! commit. A failure rolls everything back and is then recorded outside the transaction,
//! once, here:
//!
//! Each step's statements are preceded by its lock guard (`SET LOCAL lock_timeout`, …), so
//! a statement that cannot get its lock gives up instead of queueing traffic behind it; the
//! group then rolls back and runs again after a backoff (`super::guard`), recorded only if it
//! never gets its lock.
//!
//! | where it stopped | recorded | the tenant |
//! | --- | --- | --- |
//! | a script's statement, waiting for a lock | nothing, and the group runs again; after `ddl_retry_for`, that step `failed` | `lock_timeout`, naming the sessions holding locks |
//! | a script's statement (a syntax error too, wherever the server found it) | that step `failed`, with its statement, line and column | `migration_failed`, naming the version |
//! | `COMMIT` (a deferred constraint) | every step of the group `failed`: the server cannot say whose | `migration_failed`, naming the versions |
//! | the lock check | nothing: without the lock nothing may be written | `lock_lost` |
//! | the reset, `BEGIN` or a history write | nothing (the history table is what failed) | `history` |
//! | the connection | nothing: the server rolled back with the session | `history`, or `lock_lost` where the lock lived on it |
//! | anywhere, cancelled by the daemon at the end of its shutdown grace | nothing: it rolled back, and runs again on resume | `cancelled` (the work item goes back to pending) |

use std::borrow::Cow;

use super::{
    guard::Retries,
    record::{Recorder, StepOutcome},
};
use crate::{
    dialect::{DbError, Item, ItemError, Session, Timing},
    model::{MigrationKey, RecordStatus},
};

/// What one item of the transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Reset,
    Begin,
    /// A step's lock guard.
    Guard,
    /// Statement `index` of step `step`.
    Statement {
        step: usize,
        index: usize,
    },
    /// The history row of step `step`.
    Record,
    LockCheck,
    Commit,
}

/// A group that did not commit because of its scripts: what each step ended with, which
/// step failed (none for a commit failure), and why.
pub(super) struct Failed {
    pub(super) culprit: Option<usize>,
    pub(super) message: String,
    /// The culprit could not get a lock within `ddl_retry_for`.
    pub(super) gave_up_on_lock: bool,
}

/// What a transaction ended with.
pub(super) struct Ran {
    /// Each step's outcome, in order.
    pub(super) steps: Vec<StepOutcome>,
    /// `None` when it committed.
    pub(super) failed: Option<Failed>,
    /// False when the session could not be returned to its state after connecting: close
    /// it rather than use it again.
    pub(super) clean: bool,
}

/// One try of a transaction.
enum Attempt {
    /// It committed, or failed for a reason retrying will not change.
    Ran(Ran),
    /// Statement `index` of step `step` gave up waiting for a lock; everything rolled back.
    LockTimeout { step: usize, index: usize },
}

/// Runs `steps` (every one transactional) in one transaction on `session`, first returning
/// the session to its state after connecting when `reset`, and again while a statement gives
/// up waiting for a lock and `retries` allow.
///
/// A script that fails is `Ok` with [`Ran::failed`], recorded in the history table.
///
/// # Errors
/// When the history table could not be written, the lock was lost, or the connection was:
/// nothing of the group is kept, nothing is recorded, and the caller must stop using this
/// tenant's session (the error is the server's, with what the engine was doing).
pub(super) async fn run(
    session: &mut dyn Session,
    steps: &[Recorder<'_>],
    reset: bool,
    retries: &mut Retries<'_>,
) -> Result<Ran, DbError> {
    loop {
        let (step, index) = match attempt(session, steps, reset).await? {
            Attempt::Ran(ran) => return Ok(ran),
            Attempt::LockTimeout { step, index } => (step, index),
        };
        if retries.again(session, steps[step].step, index, None).await {
            continue;
        }
        let label = steps[step].label(index, "", None);
        let failed = Failed {
            culprit: Some(step),
            message: retries.gave_up(&label),
            gave_up_on_lock: true,
        };
        return record(session, steps, failed, true).await;
    }
}

async fn attempt(
    session: &mut dyn Session,
    steps: &[Recorder<'_>],
    reset: bool,
) -> Result<Attempt, DbError> {
    let mut rendered: Vec<Vec<Cow<'_, str>>> = Vec::with_capacity(steps.len());
    for (i, r) in steps.iter().enumerate() {
        match r.statements() {
            Ok(s) => rendered.push(s),
            Err(message) => {
                let failed = Failed {
                    culprit: Some(i),
                    message,
                    gave_up_on_lock: false,
                };
                return record(session, steps, failed, true).await.map(Attempt::Ran);
            }
        }
    }
    let done: Vec<_> = steps.iter().map(Recorder::done).collect();
    let guards: Vec<Vec<String>> = steps
        .iter()
        .map(|r| session.guard_sql(&r.guard(), true))
        .collect();
    let check = steps
        .first()
        .and_then(|r| r.meta.lock_check.as_ref())
        .map(|c| c.sql.as_str());
    let mut items = Vec::new();
    let mut roles = Vec::new();
    let mut push = |item, role| {
        items.push(item);
        roles.push(role);
    };
    if reset {
        push(Item::Reset, Role::Reset);
    }
    push(Item::Sql("BEGIN"), Role::Begin);
    for (step, (statements, rec)) in rendered.iter().zip(&done).enumerate() {
        for set in &guards[step] {
            push(Item::Sql(set), Role::Guard);
        }
        for (index, s) in statements.iter().enumerate() {
            push(Item::Sql(s), Role::Statement { step, index });
        }
        push(Item::Record(rec, Timing::InBatch), Role::Record);
    }
    if let Some(check) = check {
        push(Item::Sql(check), Role::LockCheck);
    }
    push(Item::Sql("COMMIT"), Role::Commit);
    let Err(ItemError {
        index,
        at,
        source,
        lock_timeout,
    }) = session.run(&items).await
    else {
        let steps = steps
            .iter()
            .map(|r| r.outcome(r.done_status(), r.total, None))
            .collect();
        return Ok(Attempt::Ran(Ran {
            steps,
            failed: None,
            clean: true,
        }));
    };
    let lost = crate::dialect::connection_lost(&source);
    if !lost && steps.first().is_some_and(|r| r.meta.flight.cancelled()) {
        // The daemon cancelled it at the end of its shutdown grace: not the script's
        // failure, so nothing is recorded; the tenant runs it again on resume.
        abort(session, reset).await;
        return Err(DbError::Cancelled {
            cause: source.to_string(),
        });
    }
    let failed = match roles[index] {
        // The server rolled the transaction back when the session ended.
        _ if lost => return Err(DbError::query("running the migration")(source)),
        Role::Statement { step, index } if lock_timeout => {
            if !abort(session, reset).await {
                return Err(DbError::query("resetting the session")(source));
            }
            return Ok(Attempt::LockTimeout { step, index });
        }
        Role::Statement { step, index } => Failed {
            culprit: Some(step),
            message: format!(
                "{}: {source}",
                steps[step].label(index, &rendered[step][index], at)
            ),
            gave_up_on_lock: false,
        },
        Role::Commit => Failed {
            culprit: None,
            message: format!("at commit: {source}"),
            gave_up_on_lock: false,
        },
        Role::LockCheck => {
            abort(session, reset).await;
            let meta = steps[0].meta;
            return Err(meta.lock_lost(&source));
        }
        Role::Reset | Role::Begin | Role::Guard => {
            abort(session, reset).await;
            return Err(DbError::query("beginning the migration transaction")(
                source,
            ));
        }
        Role::Record => {
            abort(session, reset).await;
            return Err(DbError::query("writing the history table")(source));
        }
    };
    let clean = abort(session, reset).await;
    let mut ran = record(session, steps, failed, clean).await?;
    ran.clean = clean;
    Ok(Attempt::Ran(ran))
}

/// Ends a failed transaction and resets the session again (the reset inside the
/// transaction rolled back with it); false when the session is not clean.
pub(super) async fn abort(session: &mut dyn Session, reset: bool) -> bool {
    let mut items = vec![Item::Sql("ROLLBACK")];
    if reset {
        items.push(Item::Reset);
    }
    match session.run(&items).await {
        Ok(()) => true,
        // The transaction is void either way; a failed ROLLBACK changes nothing, but the
        // reset behind it did not run.
        Err(e) if e.index == 0 && reset => session.run(&[Item::Reset]).await.is_ok(),
        Err(e) => e.index == 0,
    }
}

/// Records the failure of a group that rolled back, outside its transaction: the culprit
/// `failed` (or, when the server could not say which step, every step), the others told
/// they were rolled back with it.
async fn record(
    session: &mut dyn Session,
    steps: &[Recorder<'_>],
    failed: Failed,
    clean: bool,
) -> Result<Ran, DbError> {
    let versions: Vec<MigrationKey> = steps
        .iter()
        .map(|r| r.step.migration.version.clone())
        .collect();
    let mut outcomes = Vec::with_capacity(steps.len());
    for (i, r) in steps.iter().enumerate() {
        let blamed = failed.culprit.is_none_or(|c| c == i);
        let error = match (failed.culprit, blamed) {
            (Some(_), true) => failed.message.clone(),
            (Some(c), false) => format!("rolled back with version {}", versions[c]),
            (None, _) if steps.len() == 1 => failed.message.clone(),
            (None, _) => format!(
                "the transaction of versions {} failed {}; none of them is applied",
                list(&versions),
                failed.message
            ),
        };
        if blamed {
            super::statements::record_failure(session, r, 0, &error).await?;
        }
        let mut outcome = r.outcome(RecordStatus::Failed, 0, Some(error));
        outcome.gave_up_on_lock = blamed && failed.gave_up_on_lock;
        outcomes.push(outcome);
    }
    Ok(Ran {
        steps: outcomes,
        failed: Some(failed),
        clean,
    })
}

/// "1, 2 and 3".
pub(super) fn list(versions: &[MigrationKey]) -> String {
    let text: Vec<String> = versions.iter().map(ToString::to_string).collect();
    match text.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => text.join(""),
    }
}
