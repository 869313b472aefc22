//! Running one step and recording it. DESIGN.md rules 1 (a migration and its history row
//! commit together where DDL is transactional), 2 (the non-transactional path writes a
//! `running` row first and records progress as statements finish) and 5 (every state
//! change is also appended to the log table) live here and nowhere else.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::batch::{Failed, Part, Position, run_transaction};
use crate::{
    dialect::{DbError, LockCheck, Session, error_position},
    model::{Direction, HistoryRecord, Migration, RecordStatus, RecordWrite, Step},
};

/// On the non-transactional path, a `running` row's progress is written after a statement
/// once this long has passed since the last write: slow statements (DDL on big tables,
/// where a crash matters) are recorded one by one, while a flood of quick ones (a large
/// data file) costs one write per interval, not one per statement.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Who runs the step, for the history row.
pub(crate) struct RunMeta<'a> {
    pub(crate) rollout_id: &'a str,
    pub(crate) applied_by: &'a str,
    /// Batch number of this apply run (down steps keep their version's batch).
    pub(crate) batch: i64,
    /// How to confirm the tenant lock before each statement outside a transaction and
    /// before each commit; `None` where the lock cannot be lost (SQLite).
    pub(crate) lock_check: Option<LockCheck>,
    /// The tenant's placeholder values (`${tenant_id}`, `${schema}`, `${fleet}`, the
    /// fleet's vars).
    pub(crate) vars: &'a std::collections::BTreeMap<String, String>,
}

impl RunMeta<'_> {
    /// The lock check's statement, for [`run_transaction`].
    pub(super) fn check_sql(&self) -> Option<&str> {
        self.lock_check.as_ref().map(|c| c.sql.as_str())
    }

    /// The error of a lock check that failed with `error`.
    pub(super) fn lock_lost(&self, error: &sqlx::Error) -> DbError {
        DbError::LockLost {
            lock: self
                .lock_check
                .as_ref()
                .map_or_else(String::new, |c| c.lock.clone()),
            cause: format!("the lock check failed: {error}"),
        }
    }
}

/// What happened to one step.
#[derive(Clone)]
pub(crate) struct StepOutcome {
    /// `Applied`, `RolledBack` or `Failed`.
    pub(crate) status: RecordStatus,
    pub(crate) duration_ms: u64,
    pub(crate) statements_done: u32,
    pub(crate) statements_total: u32,
    /// The database's error, for `Failed`.
    pub(crate) error: Option<String>,
    /// False when the session could not be returned to its state after connecting (the
    /// reset failed): close it rather than use it again.
    pub(crate) session_clean: bool,
}

/// Builds the history rows of one step.
pub(super) struct Recorder<'a> {
    step: &'a Step,
    meta: &'a RunMeta<'a>,
    started: DateTime<Utc>,
    clock: Instant,
    total: i64,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(step: &'a Step, meta: &'a RunMeta<'a>) -> Self {
        Self {
            step,
            meta,
            started: Utc::now(),
            clock: Instant::now(),
            total: step.script().statement_count() as i64,
        }
    }

    /// The step's statements with the tenant's placeholder values filled in.
    ///
    /// # Errors
    /// A sentence when a placeholder has no value or an unsafe one (the plan refuses such a
    /// step first, so this is a second guard).
    pub(super) fn statements(&self) -> Result<Vec<std::borrow::Cow<'a, str>>, String> {
        let m = &self.step.migration;
        self.step
            .script()
            .rendered(self.meta.vars)
            .map_err(|e| format!("version {} ({}): {e}", m.version, m.name))
    }

    fn record(&self, status: RecordStatus, done: i64, error: Option<String>) -> RecordWrite {
        let finished = (status != RecordStatus::Running).then(Utc::now);
        RecordWrite {
            version: self.step.migration.version,
            name: self.step.migration.name.clone(),
            checksum: self.step.migration.up.checksum.clone(),
            down_checksum: self
                .step
                .migration
                .down
                .as_ref()
                .map(|d| d.checksum.clone()),
            status,
            batch: self.step.batch.unwrap_or(self.meta.batch),
            rollout_id: self.meta.rollout_id.to_owned(),
            applied_by: self.meta.applied_by.to_owned(),
            started_at: self.started,
            finished_at: finished,
            duration_ms: finished.map(|_| self.clock.elapsed().as_millis() as i64),
            error,
            statements_done: done,
            statements_total: self.total,
            rolled_back_at: (status == RecordStatus::RolledBack).then(Utc::now),
            direction: self.step.direction,
        }
    }

    /// The history writes of the step's success, to run inside its transaction.
    pub(super) fn done_sql(&self, session: &dyn Session) -> String {
        session.record_sql(&self.record(self.done_status(), self.total, None))
    }

    pub(super) fn outcome(
        &self,
        status: RecordStatus,
        done: i64,
        error: Option<String>,
    ) -> StepOutcome {
        StepOutcome {
            status,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            statements_done: done as u32,
            statements_total: self.total as u32,
            error,
            session_clean: true,
        }
    }

    pub(super) fn done_status(&self) -> RecordStatus {
        match self.step.direction {
            Direction::Up => RecordStatus::Applied,
            Direction::Down => RecordStatus::RolledBack,
        }
    }

    /// "statement 3 of 7 (line 12, column 1)": where a failing statement starts in its file.
    pub(super) fn statement_label(&self, index: usize) -> String {
        let (line, column) = self
            .step
            .script()
            .spans
            .get(index)
            .map_or((0, 0), |s| (s.line, s.column));
        format!(
            "statement {} of {} (line {line}, column {column})",
            index + 1,
            self.total
        )
    }

    /// [`Self::statement_label`] of statement `index`, which failed when sent as the tail
    /// of `request`, followed by ", error at line 13, column 9" when the server placed the
    /// error (`position`: PostgreSQL's, 1-based characters into `request`) inside the
    /// statement and the statement was sent as its file has it (no placeholders).
    fn failure_label(&self, index: usize, request: &str, position: Option<usize>) -> String {
        let label = self.statement_label(index);
        let script = self.step.script();
        let Some(span) = script.spans.get(index) else {
            return label;
        };
        let text = &script.sql[span.bytes.clone()];
        let Some(prefix) = request.strip_suffix(text) else {
            return label;
        };
        let at = position
            .and_then(|p| p.checked_sub(prefix.chars().count() + 1))
            .and_then(|p| text.char_indices().nth(p));
        match at {
            Some((byte, _)) => {
                let (line, column) = script.line_column(span.bytes.start + byte);
                format!("{label}, error at line {line}, column {column}")
            }
            None => label,
        }
    }
}

/// Runs `step` on `session` and records it; with `reset`, the session is first returned to
/// its state after connecting (PostgreSQL runs every migration of a tenant on one session),
/// inside the step's transaction where it has one.
///
/// A script that fails is an `Ok` outcome with status `Failed`, recorded in the history
/// table; `Err` means the history table itself could not be written, or the connection
/// was lost, and the caller must stop using this tenant's session.
pub(crate) async fn run_step(
    session: &mut dyn Session,
    step: &Step,
    meta: &RunMeta<'_>,
    reset: Option<&[String]>,
) -> Result<StepOutcome, DbError> {
    let rec = Recorder::new(step, meta);
    if step.transactional {
        in_transaction(session, &rec, reset).await
    } else {
        if let Some(reset) = reset {
            session
                .execute_batch(&reset.join(";\n"))
                .await
                .map_err(|e| DbError::query("resetting the session")(e.source))?;
        }
        statement_by_statement(session, &rec).await
    }
}

async fn write(session: &mut dyn Session, rec: &RecordWrite) -> Result<(), DbError> {
    session.write_record(rec).await?;
    session.append_log(rec).await
}

/// The reset, `BEGIN`, the script, the history upsert and the log insert, the lock check and
/// `COMMIT`, in one request for any script below the session's batch limit.
async fn in_transaction(
    session: &mut dyn Session,
    r: &Recorder<'_>,
    reset: Option<&[String]>,
) -> Result<StepOutcome, DbError> {
    let statements = match r.statements() {
        Ok(s) => s,
        Err(e) => return record_failure(session, r, 0, e).await,
    };
    let part = Part {
        statements,
        trailer: r.done_sql(session),
    };
    let check = r.meta.check_sql();
    let Err(Failed { at, error }) = run_transaction(session, reset, &[part], check).await else {
        return Ok(r.outcome(r.done_status(), r.total, None));
    };
    if error.connection_lost() {
        // The server rolled the transaction back when the session ended.
        return Err(DbError::query("running the migration")(error.source));
    }
    match at {
        Position::Trailer { .. } => {
            abort(session, reset).await;
            Err(DbError::query("writing the history table")(error.source))
        }
        Position::Begin => {
            abort(session, reset).await;
            Err(DbError::query("beginning the migration transaction")(
                error.source,
            ))
        }
        // Nothing of the migration is left, and without the lock nothing is recorded.
        Position::LockCheck => {
            abort(session, reset).await;
            Err(r.meta.lock_lost(&error.source))
        }
        Position::Statement { index, .. } => {
            let clean = abort(session, reset).await;
            let message = format!("{}: {}", r.statement_label(index), error.source);
            let mut outcome = record_failure(session, r, 0, message).await?;
            outcome.session_clean = clean;
            Ok(outcome)
        }
        // A deferred constraint failed at commit; the server has rolled back.
        Position::Commit => {
            let clean = abort(session, reset).await;
            let message = format!("at commit: {}", error.source);
            let mut outcome = record_failure(session, r, 0, message).await?;
            outcome.session_clean = clean;
            Ok(outcome)
        }
    }
}

/// Ends a failed transaction and resets the session again (the reset inside the
/// transaction rolled back with it); false when the session is not clean.
pub(super) async fn abort(session: &mut dyn Session, reset: Option<&[String]>) -> bool {
    // The transaction is void either way; a failed ROLLBACK changes nothing.
    let _ = session.execute_batch("ROLLBACK").await;
    match reset {
        Some(reset) => session.execute_batch(&reset.join(";\n")).await.is_ok(),
        None => true,
    }
}

async fn statement_by_statement(
    session: &mut dyn Session,
    r: &Recorder<'_>,
) -> Result<StepOutcome, DbError> {
    let statements = match r.statements() {
        Ok(s) => s,
        Err(e) => return record_failure(session, r, 0, e).await,
    };
    write(session, &r.record(RecordStatus::Running, 0, None)).await?;
    let mut recorded = Instant::now();
    let check = r.meta.lock_check.as_ref();
    for (i, stmt) in statements.iter().map(|s| s.as_ref()).enumerate() {
        // The lock check joins the statement's request where that keeps the statement
        // outside a transaction, and goes alone before it otherwise.
        let mut joined = String::new();
        let request = match check {
            Some(c) if c.joins => {
                joined = format!("{}\n;\n{stmt}", c.sql);
                joined.as_str()
            }
            Some(c) => {
                if let Err(e) = session.execute_batch(&c.sql).await {
                    return lock_lost_before(session, r, i, &e.source).await;
                }
                stmt
            }
            None => stmt,
        };
        let result = session.execute_batch(request).await;
        let result = match result {
            Err(e) if !joined.is_empty() && e.done == 0 && !e.connection_lost() => {
                return lock_lost_before(session, r, i, &e.source).await;
            }
            other => other,
        };
        if let Err(e) = result {
            if e.connection_lost() {
                // The `running` row stays: a crash-like state, visible and repairable.
                return Err(DbError::query("running the migration")(e.source));
            }
            let at = r.failure_label(i, request, error_position(&e.source));
            let message = format!("{at}: {}", e.source);
            return record_failure(session, r, i as i64, message).await;
        }
        if recorded.elapsed() >= PROGRESS_EVERY {
            session
                .write_record(&r.record(RecordStatus::Running, i as i64 + 1, None))
                .await?;
            recorded = Instant::now();
        }
    }
    write(session, &r.record(r.done_status(), r.total, None)).await?;
    Ok(r.outcome(r.done_status(), r.total, None))
}

/// Records that the lock was found gone before statement `index` (0-based), which did not
/// run, and returns [`DbError::LockLost`]. The `running` row becomes `failed` with the
/// statements done, so the tenant waits for a repair rather than running the rest.
async fn lock_lost_before(
    session: &mut dyn Session,
    r: &Recorder<'_>,
    index: usize,
    error: &sqlx::Error,
) -> Result<StepOutcome, DbError> {
    let lost = r.meta.lock_lost(error);
    let message = format!("before {}: {lost}", r.statement_label(index));
    record_failure(session, r, index as i64, message).await?;
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
pub(super) async fn record_failure(
    session: &mut dyn Session,
    r: &Recorder<'_>,
    done: i64,
    error: String,
) -> Result<StepOutcome, DbError> {
    let failed = r.record(RecordStatus::Failed, done, Some(error.clone()));
    if r.step.transactional && r.step.direction == Direction::Down {
        session.append_log(&failed).await?;
    } else {
        write(session, &failed).await?;
    }
    Ok(r.outcome(RecordStatus::Failed, done, Some(error)))
}

/// Rewrites the `failed` or `running` record of `migration` as `status` (`Applied` or
/// `RolledBack`) after an operator checked the schema, keeping its batch, progress and
/// error, and appends the change to the log. The caller holds the tenant lock.
///
/// # Errors
/// [`DbError::Query`] when the history table cannot be written.
pub(super) async fn record_repair(
    session: &mut dyn Session,
    record: &HistoryRecord,
    migration: &Migration,
    status: RecordStatus,
    applied_by: &str,
) -> Result<(), DbError> {
    let now = Utc::now();
    let rec = RecordWrite {
        version: record.version,
        name: migration.name.clone(),
        checksum: migration.up.checksum.clone(),
        down_checksum: migration.down.as_ref().map(|d| d.checksum.clone()),
        status,
        batch: record.batch,
        rollout_id: "repair".into(),
        applied_by: applied_by.to_owned(),
        started_at: now,
        finished_at: Some(now),
        duration_ms: Some(0),
        error: record.error.clone(),
        statements_done: record.statements_done,
        statements_total: record.statements_total,
        rolled_back_at: (status == RecordStatus::RolledBack).then_some(now),
        direction: match status {
            RecordStatus::RolledBack => Direction::Down,
            _ => Direction::Up,
        },
    };
    write(session, &rec).await
}
