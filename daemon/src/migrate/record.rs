//! Every history row a step writes, built in one place ([`Recorder`]), and the words that
//! say where a failing statement is.

use std::{borrow::Cow, collections::BTreeMap, time::Instant};

use chrono::{DateTime, Utc};

use crate::{
    dialect::{DbError, LockCheck},
    model::{Direction, LockGuard, RecordStatus, RecordWrite, Step},
};

/// Who runs a tenant's steps, and how, for the history rows and the lock checks.
pub(crate) struct RunMeta<'a> {
    /// The rollout (or `baseline`, `adopt`, `repair`).
    pub(crate) rollout_id: &'a str,
    /// The daemon instance.
    pub(crate) applied_by: &'a str,
    /// Batch number of this apply run (down steps keep their version's batch).
    pub(crate) batch: i64,
    /// How to confirm the tenant lock before each statement outside a transaction and
    /// before each commit; `None` where the lock cannot be lost (SQLite).
    pub(crate) lock_check: Option<LockCheck>,
    /// The tenant's placeholder values (`${tenant_id}`, `${schema}`, `${fleet}`, the
    /// fleet's vars).
    pub(crate) vars: &'a BTreeMap<String, String>,
    /// The fleet's lock guard; each script's directives override it.
    pub(crate) guard: LockGuard,
    /// The tenant's place among the migrations in flight: says whether the daemon
    /// cancelled what runs (the end of its shutdown grace).
    pub(crate) flight: &'a crate::fleet::Flight,
}

impl RunMeta<'_> {
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
#[derive(Debug, Clone)]
pub(crate) struct StepOutcome {
    /// `Applied`, `RolledBack` or `Failed`.
    pub(crate) status: RecordStatus,
    /// Wall time, ms.
    pub(crate) duration_ms: u64,
    /// Statements finished.
    pub(crate) statements_done: u32,
    /// Statements in the script.
    pub(crate) statements_total: u32,
    /// The database's error, for `Failed`, with where it happened.
    pub(crate) error: Option<String>,
    /// `Failed` because a statement could not get its lock within `ddl_retry_for`.
    pub(crate) gave_up_on_lock: bool,
}

/// Builds the history rows of one step, and says where its statements are.
pub(super) struct Recorder<'a> {
    pub(super) step: &'a Step,
    pub(super) meta: &'a RunMeta<'a>,
    started: DateTime<Utc>,
    clock: Instant,
    pub(super) total: i64,
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
    pub(super) fn statements(&self) -> Result<Vec<Cow<'a, str>>, String> {
        let m = &self.step.migration;
        self.step
            .script()
            .rendered(self.meta.vars)
            .map_err(|e| format!("version {} ({}): {e}", m.version, m.name))
    }

    /// The step's record in `status` with `done` statements finished and `error`.
    pub(super) fn record(
        &self,
        status: RecordStatus,
        done: i64,
        error: Option<String>,
    ) -> RecordWrite {
        let batch = self.step.batch.unwrap_or(self.meta.batch);
        let who = (self.meta.rollout_id, self.meta.applied_by);
        RecordWrite::new(
            &self.step.migration,
            status,
            self.step.direction,
            batch,
            who,
            self.started,
        )
        .with_progress(done, error)
    }

    /// The record of the step's success: `applied`, or `rolled_back` for a `down`.
    pub(super) fn done(&self) -> RecordWrite {
        self.record(self.done_status(), self.total, None)
    }

    /// The step's outcome now.
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
            gave_up_on_lock: false,
        }
    }

    /// The step's lock guard: the fleet's, with its script's directives.
    pub(super) fn guard(&self) -> LockGuard {
        self.meta.guard.for_script(self.step.script())
    }

    /// `applied` for an `up`, `rolled_back` for a `down`.
    pub(super) fn done_status(&self) -> RecordStatus {
        match self.step.direction {
            Direction::Up => RecordStatus::Applied,
            Direction::Down => RecordStatus::RolledBack,
        }
    }

    /// The record of a failure after `done` statements: the history row and its log row,
    /// except for a transactional `down`, whose transaction restored its `applied` row, so
    /// only the log keeps the failure.
    pub(super) fn failure_writes_row(&self) -> bool {
        !(self.step.transactional && self.step.direction == Direction::Down)
    }

    /// "statement 3 of 7 (line 12, column 1)": where statement `index` (0-based) starts in
    /// its file; followed by ", error at line 13, column 9" when the server placed the error
    /// `at` characters into the statement and the statement was sent as its file has it
    /// (no placeholders filled in).
    pub(super) fn label(&self, index: usize, sent: &str, at: Option<usize>) -> String {
        let script = self.step.script();
        let span = script.spans.get(index);
        let (line, column) = span.map_or((0, 0), |s| (s.line, s.column));
        let label = format!(
            "statement {} of {} (line {line}, column {column})",
            index + 1,
            self.total
        );
        let Some(span) = span else {
            return label;
        };
        let text = &script.sql[span.bytes.clone()];
        if sent != text {
            return label;
        }
        match at.and_then(|a| text.char_indices().nth(a)) {
            Some((byte, _)) => {
                let (line, column) = script.line_column(span.bytes.start + byte);
                format!("{label}, error at line {line}, column {column}")
            }
            None => label,
        }
    }
}
