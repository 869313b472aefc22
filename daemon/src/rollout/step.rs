//! Running one step and recording it. DESIGN.md rules 1 (a migration and its history row
//! commit together where DDL is transactional), 2 (the non-transactional path writes a
//! `running` row first and records progress per statement) and 5 (every state change is
//! also appended to the log table) live here and nowhere else.

use std::time::Instant;

use chrono::Utc;

use crate::{
    dialect::{DbError, Session},
    model::{Direction, HistoryRecord, Migration, RecordStatus, RecordWrite, Step},
};

/// Who runs the step, for the history row.
pub(crate) struct RunMeta<'a> {
    pub(crate) rollout_id: &'a str,
    pub(crate) applied_by: &'a str,
    /// Batch number of this apply run (down steps keep their version's batch).
    pub(crate) batch: i64,
}

/// What happened to one step.
pub(crate) struct StepOutcome {
    /// `Applied`, `RolledBack` or `Failed`.
    pub(crate) status: RecordStatus,
    pub(crate) duration_ms: u64,
    pub(crate) statements_done: u32,
    pub(crate) statements_total: u32,
    /// The database's error, for `Failed`.
    pub(crate) error: Option<String>,
}

struct Recorder<'a> {
    step: &'a Step,
    meta: &'a RunMeta<'a>,
    started: chrono::DateTime<Utc>,
    clock: Instant,
    total: i64,
}

impl Recorder<'_> {
    fn record(&self, status: RecordStatus, done: i64, error: Option<String>) -> RecordWrite {
        let finished = (status != RecordStatus::Running).then(Utc::now);
        RecordWrite {
            version: self.step.migration.version,
            name: self.step.migration.name.clone(),
            checksum: self.step.migration.up.checksum.clone(),
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

    fn outcome(&self, status: RecordStatus, done: i64, error: Option<String>) -> StepOutcome {
        StepOutcome {
            status,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            statements_done: done as u32,
            statements_total: self.total as u32,
            error,
        }
    }

    fn done_status(&self) -> RecordStatus {
        match self.step.direction {
            Direction::Up => RecordStatus::Applied,
            Direction::Down => RecordStatus::RolledBack,
        }
    }
}

/// Runs `step` on `session` and records it.
///
/// A script that fails is an `Ok` outcome with status `Failed`, recorded in the history
/// table; `Err` means the history table itself could not be written, and the caller must
/// stop using this tenant.
pub(crate) async fn run_step(
    session: &mut dyn Session,
    step: &Step,
    meta: &RunMeta<'_>,
) -> Result<StepOutcome, DbError> {
    let rec = Recorder {
        step,
        meta,
        started: Utc::now(),
        clock: Instant::now(),
        total: step.script().statement_count() as i64,
    };
    if step.transactional {
        in_transaction(session, &rec).await
    } else {
        statement_by_statement(session, &rec).await
    }
}

async fn write(session: &mut dyn Session, rec: &RecordWrite) -> Result<(), DbError> {
    session.write_record(rec).await?;
    session.append_log(rec).await
}

async fn in_transaction(
    session: &mut dyn Session,
    r: &Recorder<'_>,
) -> Result<StepOutcome, DbError> {
    let script = r.step.script();
    session
        .execute("BEGIN")
        .await
        .map_err(DbError::query("beginning the migration transaction"))?;
    let ran = match script.spans.is_empty() {
        true => Ok(()),
        false => session.execute(&script.sql).await,
    };
    if let Err(e) = ran {
        // The transaction is void either way; a failed ROLLBACK changes nothing.
        let _ = session.execute("ROLLBACK").await;
        return record_failure(session, r, 0, e.to_string()).await;
    }
    let done = r.record(r.done_status(), r.total, None);
    if let Err(e) = write(session, &done).await {
        let _ = session.execute("ROLLBACK").await;
        return Err(e);
    }
    match session.execute("COMMIT").await {
        Ok(()) => Ok(r.outcome(r.done_status(), r.total, None)),
        // A deferred constraint can fail at commit; the server has rolled back.
        Err(e) => {
            let _ = session.execute("ROLLBACK").await;
            record_failure(session, r, 0, e.to_string()).await
        }
    }
}

async fn statement_by_statement(
    session: &mut dyn Session,
    r: &Recorder<'_>,
) -> Result<StepOutcome, DbError> {
    write(session, &r.record(RecordStatus::Running, 0, None)).await?;
    for (i, stmt) in r.step.script().statements().enumerate() {
        if let Err(e) = session.execute(stmt).await {
            let message = format!("statement {} of {}: {e}", i + 1, r.total);
            return record_failure(session, r, i as i64, message).await;
        }
        session
            .write_record(&r.record(RecordStatus::Running, i as i64 + 1, None))
            .await?;
    }
    write(session, &r.record(r.done_status(), r.total, None)).await?;
    Ok(r.outcome(r.done_status(), r.total, None))
}

/// Records a failed script.
///
/// - A transaction that rolled back left nothing behind. For an `up`, the row becomes
///   `failed` with `statements_done = 0`, and the next apply retries it. For a `down`, the
///   row (restored by the rollback) stays `applied`, and only the log keeps the failure.
/// - A failure outside a transaction may have left part of the script behind (a
///   `CREATE INDEX CONCURRENTLY` that fails leaves an invalid index), so the row becomes
///   `failed` with its progress and blocks the tenant until someone repairs it.
async fn record_failure(
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
