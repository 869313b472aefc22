//! The engine's rules (DESIGN.md 1 to 5) and both transaction modes, on the scripted fake
//! database: no server, every fault on order. Each test names the rule it holds. Grouped
//! mode, baselines and repairs, and rule 7 (a statement that gave up on a lock) have files
//! of their own.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;

use super::{
    Job, Observer, StepOutcome, TenantReport, baseline,
    fake::{FakeDb, Faults},
    repair, run,
};
use crate::{
    catalog::parse_script,
    fleet::Tenant,
    model::{
        ApplyOptions, BaselineSource, DialectKind, Direction, FailureCode, LockGuard, LockRetry,
        Migration, MigrationKey, MigrationSet, RecordStatus, RepairAction, RollbackTarget,
        RolloutOp, Step, TenantOutcome, TransactionMode, Version,
    },
};

const PG: DialectKind = DialectKind::Postgres;
const MY: DialectKind = DialectKind::Mysql;
const LITE: DialectKind = DialectKind::Sqlite;

/// Migration `v` creates `t{v}` in `n` statements (`CREATE TABLE t{v}`, then `n - 1`
/// inserts); its down drops it. Migration 2's second statement is `BAD` where `bad`.
fn set(kind: DialectKind, versions: i64, bad: Option<&str>) -> MigrationSet {
    let migration = |v: i64| {
        let second = match (v, bad) {
            (2, Some(bad)) => bad.to_owned(),
            _ => format!("INSERT INTO t{v} VALUES ({v})"),
        };
        let up = format!("CREATE TABLE t{v} (a int);\n{second};\nINSERT INTO t{v} VALUES (0);\n");
        Migration {
            version: v.into(),
            name: format!("m{v}"),
            up: parse_script(&up, kind).unwrap(),
            down: Some(parse_script(&format!("DELETE FROM t{v} WHERE a = 0;\n"), kind).unwrap()),
            unordered: false,
        }
    };
    MigrationSet::new((1..=versions).map(migration).collect()).unwrap()
}

/// What the engine told its caller.
#[derive(Default)]
struct Seen {
    events: Mutex<Vec<String>>,
    stop_after: Option<usize>,
    /// Tenants between their first lock retry and the end of that migration, now and at most.
    retrying: Mutex<(Vec<String>, usize)>,
}

#[async_trait]
impl Observer for Seen {
    fn lock_waited(&self, _: &Tenant, _: Duration, acquired: bool) {
        self.push(format!("lock {acquired}"));
    }

    async fn migration_started(&self, _: &Tenant, step: &Step) {
        self.push(format!("start {}", step.migration.version));
    }

    async fn lock_retry(&self, tenant: &Tenant, retry: &LockRetry) {
        self.push(format!(
            "retry {} {} {}",
            retry.version, retry.statement, retry.attempt
        ));
        let mut r = self.retrying.lock().unwrap();
        if !r.0.contains(&tenant.id) {
            r.0.push(tenant.id.clone());
        }
        r.1 = r.1.max(r.0.len());
    }

    async fn migration_finished(&self, tenant: &Tenant, step: &Step, o: &StepOutcome) {
        self.push(format!("end {} {}", step.migration.version, o.status));
        self.retrying.lock().unwrap().0.retain(|t| *t != tenant.id);
    }

    fn stop_requested(&self) -> bool {
        let ended = self
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with("end"))
            .count();
        self.stop_after.is_some_and(|n| ended >= n)
    }
}

impl Seen {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

struct Case {
    db: FakeDb,
    tenant: Arc<Tenant>,
    set: MigrationSet,
    vars: BTreeMap<String, String>,
}

impl Case {
    fn new(kind: DialectKind, versions: i64, bad: Option<&str>, faults: Faults) -> Self {
        let db = FakeDb::new(kind, faults);
        let tenant = Tenant::for_test(vec![("t1", Arc::new(db.clone()))], 2).remove(0);
        Self {
            tenant,
            db,
            set: set(kind, versions, bad),
            vars: BTreeMap::new(),
        }
    }

    fn job(&self, op: RolloutOp, transaction: TransactionMode) -> Job<'_> {
        Job {
            set: &self.set,
            op,
            transaction,
            dialect: self.db_kind(),
            lock_timeout: Duration::from_millis(50),
            rollout_id: "r1",
            applied_by: "test",
            vars: &self.vars,
            guard: GUARD,
            accept_data_loss: false,
            backup: crate::model::BackupWhen::Never,
            read_schema: false,
            expected_schema: None,
        }
    }

    fn db_kind(&self) -> DialectKind {
        crate::dialect::Database::kind(&self.db)
    }

    async fn apply(&self, mode: TransactionMode, seen: &Seen) -> TenantReport {
        let op = RolloutOp::Apply(ApplyOptions::default());
        run(&self.tenant, &self.job(op, mode), seen).await
    }

    async fn rollback(&self, steps: u32) -> TenantReport {
        let op = RolloutOp::Rollback(RollbackTarget::Steps(steps));
        run(
            &self.tenant,
            &self.job(op, TransactionMode::Migration),
            &Seen::default(),
        )
        .await
    }

    fn status(&self, v: i64) -> Option<(RecordStatus, i64)> {
        let s = self.db.state();
        let r = s.history.as_ref()?.get(&MigrationKey::from(v))?;
        Some((r.status, r.statements_done))
    }

    fn error(&self, v: i64) -> String {
        let s = self.db.state();
        let r = &s.history.as_ref().unwrap()[&MigrationKey::from(v)];
        r.error.clone().unwrap_or_default()
    }

    /// The tables whose `CREATE TABLE` took effect.
    fn tables(&self) -> Vec<String> {
        let s = self.db.state();
        s.schema
            .iter()
            .filter_map(|sql| sql.strip_prefix("CREATE TABLE "))
            .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    }

    fn log(&self) -> Vec<(i64, RecordStatus)> {
        let s = self.db.state();
        s.log
            .iter()
            .map(|r| (r.version.as_i64().unwrap(), r.status))
            .collect()
    }

    /// Rule 3: nothing holds the lock once the engine is done.
    fn assert_unlocked(&self) {
        assert_eq!(
            self.db.state().lock_holder,
            None,
            "the tenant lock was left held"
        );
    }
}

fn failure(report: &TenantReport) -> (FailureCode, Option<i64>, String) {
    let f = report.failure.as_ref().expect("a failure");
    (
        f.code,
        f.version.as_ref().and_then(|v| v.as_i64()),
        f.message.clone(),
    )
}

/// 500 ms a statement, retried for a minute.
const GUARD: LockGuard = LockGuard {
    lock_timeout: Duration::from_millis(500),
    retry_for: Duration::from_secs(60),
    statement_timeout: None,
};

const TX: TransactionMode = TransactionMode::Migration;
const GROUPED: TransactionMode = TransactionMode::Tenant;

#[tokio::test]
async fn rule_1_each_migration_commits_with_its_history_row_in_one_request() {
    let case = Case::new(PG, 3, None, Faults::default());
    let seen = Seen::default();
    let report = case.apply(TX, &seen).await;
    assert_eq!(report.outcome, TenantOutcome::Succeeded);
    assert_eq!(report.migrations_run, 3);
    assert_eq!(case.tables(), ["t1", "t2", "t3"]);
    for v in 1..=3 {
        assert_eq!(case.status(v), Some((RecordStatus::Applied, 3)));
    }
    assert_eq!(
        case.log(),
        [
            (1, RecordStatus::Applied),
            (2, RecordStatus::Applied),
            (3, RecordStatus::Applied)
        ]
    );
    // One request per migration (reset, BEGIN, script, history, lock check, COMMIT), plus
    // none for the history read, which the fake answers without a request.
    assert_eq!(case.db.state().runs, 3);
    assert_eq!(
        seen.events(),
        [
            "lock true",
            "start 1",
            "end 1 applied",
            "start 2",
            "end 2 applied",
            "start 3",
            "end 3 applied"
        ]
    );
    case.assert_unlocked();
}

#[tokio::test]
async fn rule_1_a_failing_statement_leaves_nothing_but_a_failed_record() {
    for kind in [PG, LITE] {
        let faults = Faults {
            fail_statement: Some("BAD"),
            ..Faults::default()
        };
        let case = Case::new(kind, 3, Some("BAD THING"), faults);
        let report = case.apply(TX, &Seen::default()).await;
        let (code, version, message) = failure(&report);
        assert_eq!(
            (code, version),
            (FailureCode::MigrationFailed, Some(2)),
            "{kind}"
        );
        assert!(
            message.contains("statement 2 of 3 (line 2, column 1)"),
            "{message}"
        );
        assert_eq!(
            case.tables(),
            ["t1"],
            "{kind}: nothing of version 2 is kept"
        );
        assert_eq!(case.status(2), Some((RecordStatus::Failed, 0)));
        assert_eq!(case.status(3), None, "{kind}: version 3 never ran");
        assert_eq!(case.log().last(), Some(&(2, RecordStatus::Failed)));
        assert_eq!(report.current_version, Some(Version::from(1)));
        case.assert_unlocked();
    }
}

#[tokio::test]
async fn rule_1_a_parse_error_of_the_whole_request_is_the_statement_s_own() {
    // PostgreSQL parses a whole request before running any of it: the failure comes back
    // with nothing done, placed at the bad statement, and is recorded as that statement's.
    let faults = Faults {
        parse_error: Some("DROP"),
        ..Faults::default()
    };
    let case = Case::new(
        PG,
        2,
        Some("ALTER TABLE t2 ADD CONSTRAINT u UNIQUE (a) DROP"),
        faults,
    );
    let report = case.apply(TX, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!((code, version), (FailureCode::MigrationFailed, Some(2)));
    assert!(
        message.contains("statement 2 of 3 (line 2, column 1), error at line 2, column 44"),
        "{message}"
    );
    assert_eq!(case.status(2), Some((RecordStatus::Failed, 0)));
    assert!(case.error(2).contains("syntax error"));
    case.assert_unlocked();
}

#[tokio::test]
async fn rule_1_a_failed_commit_keeps_nothing_and_records_the_failure() {
    let faults = Faults {
        fail_commit: true,
        ..Faults::default()
    };
    let case = Case::new(PG, 2, None, faults);
    let report = case.apply(TX, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!((code, version), (FailureCode::MigrationFailed, Some(1)));
    assert!(
        message.contains("at commit: ") && message.contains("deferred constraint violated"),
        "{message}"
    );
    assert!(case.tables().is_empty());
    assert_eq!(case.status(1), Some((RecordStatus::Failed, 0)));
    case.assert_unlocked();
}

#[tokio::test]
async fn rule_1_a_connection_lost_at_commit_records_nothing_and_frees_the_lock() {
    let faults = Faults {
        drop_at_commit: true,
        ..Faults::default()
    };
    let case = Case::new(PG, 2, None, faults);
    let report = case.apply(TX, &Seen::default()).await;
    // The lock lived on the migrating session (PostgreSQL): it went with the connection.
    let (code, version, _) = failure(&report);
    assert_eq!((code, version), (FailureCode::LockLost, Some(1)));
    assert!(case.tables().is_empty());
    assert_eq!(
        case.status(1),
        None,
        "nothing may be written without the connection"
    );
    case.assert_unlocked();
    let s = case.db.state();
    assert_eq!(
        s.closed, s.opened,
        "the broken session was closed, not pooled"
    );
}

#[tokio::test]
async fn rule_2_outside_a_transaction_a_running_row_comes_first_and_progress_stays() {
    let faults = Faults {
        fail_statement: Some("BAD"),
        ..Faults::default()
    };
    let case = Case::new(MY, 2, Some("BAD THING"), faults);
    let report = case.apply(TX, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!((code, version), (FailureCode::MigrationFailed, Some(2)));
    assert!(message.contains("statement 2 of 3"), "{message}");
    // Statement 1 of version 2 took effect (MySQL DDL auto-commits) and the row says so.
    assert_eq!(case.tables(), ["t1", "t2"]);
    assert_eq!(case.status(2), Some((RecordStatus::Failed, 1)));
    assert_eq!(
        case.log(),
        [
            (1, RecordStatus::Running),
            (1, RecordStatus::Applied),
            (2, RecordStatus::Running),
            (2, RecordStatus::Failed),
        ]
    );
    // A second apply is blocked until repaired (rule 4: a partial record is an error).
    let again = case.apply(TX, &Seen::default()).await;
    assert_eq!(failure(&again).0, FailureCode::Blocked);
    case.assert_unlocked();
}

#[tokio::test]
async fn rule_3_a_lock_lost_between_statements_stops_before_the_next_one() {
    // Lost after 4 statements: version 1's three and the first of version 2.
    let faults = Faults {
        lose_lock_after: Some(4),
        ..Faults::default()
    };
    let case = Case::new(MY, 3, None, faults);
    let report = case.apply(TX, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!(
        (code, version),
        (FailureCode::LockLost, Some(2)),
        "{message}"
    );
    assert_eq!(case.status(2), Some((RecordStatus::Failed, 1)));
    assert!(
        case.error(2).contains("before statement 2 of 3"),
        "{}",
        case.error(2)
    );
    assert_eq!(case.status(3), None);
}

#[tokio::test]
async fn rule_3_a_lock_lost_before_commit_commits_nothing() {
    let faults = Faults {
        lose_lock_after: Some(4),
        ..Faults::default()
    };
    let case = Case::new(PG, 3, None, faults);
    let report = case.apply(TX, &Seen::default()).await;
    assert_eq!(failure(&report).0, FailureCode::LockLost);
    assert_eq!(case.tables(), ["t1"]);
    assert_eq!(case.status(2), None, "without the lock nothing is recorded");
}

#[tokio::test]
async fn rule_3_a_lock_held_elsewhere_times_out_and_nothing_is_made() {
    let faults = Faults {
        lock_held_elsewhere: true,
        ..Faults::default()
    };
    let case = Case::new(PG, 2, None, faults);
    let seen = Seen::default();
    let report = case.apply(TX, &seen).await;
    assert_eq!(failure(&report).0, FailureCode::LockTimeout);
    assert!(
        case.db.state().history.is_none(),
        "not even the history table"
    );
    assert_eq!(seen.events(), ["lock false"]);
}

#[tokio::test]
async fn rule_3_a_session_whose_release_failed_is_closed_not_pooled() {
    let faults = Faults {
        fail_unlock: true,
        ..Faults::default()
    };
    let case = Case::new(PG, 1, None, faults);
    let report = case.apply(TX, &Seen::default()).await;
    assert_eq!(report.outcome, TenantOutcome::Succeeded);
    let s = case.db.state();
    assert_eq!(s.closed, s.opened, "closed, so the server frees the lock");
    assert_eq!(s.lock_holder, None);
}

#[tokio::test]
async fn rule_4_a_changed_applied_script_blocks_before_anything_runs() {
    let case = Case::new(LITE, 2, None, Faults::default());
    case.apply(TX, &Seen::default()).await;
    let edited = Case {
        set: set(LITE, 3, Some("INSERT INTO t2 VALUES (99)")),
        ..case
    };
    let report = edited.apply(TX, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!(
        (code, version),
        (FailureCode::Blocked, Some(2)),
        "{message}"
    );
    assert_eq!(edited.tables(), ["t1", "t2"], "version 3 did not run");
    edited.assert_unlocked();
}

#[tokio::test]
async fn rule_5_a_rollback_marks_rows_rolled_back_and_logs_every_change() {
    let case = Case::new(PG, 2, None, Faults::default());
    case.apply(TX, &Seen::default()).await;
    let report = case.rollback(1).await;
    assert_eq!(report.outcome, TenantOutcome::Succeeded);
    assert_eq!(report.current_version, Some(Version::from(1)));
    let s = case.db.state();
    let row = &s.history.as_ref().unwrap()[&MigrationKey::from(2)];
    assert_eq!(
        (row.status, row.direction),
        (RecordStatus::RolledBack, Direction::Down)
    );
    assert!(row.rolled_back_at.is_some());
    assert_eq!(s.log.len(), 3, "two applies and one rollback");
}

#[tokio::test]
async fn rule_5_a_failed_transactional_down_keeps_its_applied_row_and_logs_the_failure() {
    let case = Case::new(PG, 2, None, Faults::default());
    case.apply(TX, &Seen::default()).await;
    case.db.state().faults.fail_statement = Some("DELETE FROM t2");
    let report = case.rollback(1).await;
    assert_eq!(failure(&report).0, FailureCode::MigrationFailed);
    assert_eq!(case.status(2), Some((RecordStatus::Applied, 3)));
    assert_eq!(case.log().last(), Some(&(2, RecordStatus::Failed)));
}

#[tokio::test]
async fn a_stop_request_ends_the_tenant_before_its_next_migration() {
    let case = Case::new(PG, 3, None, Faults::default());
    let seen = Seen {
        stop_after: Some(1),
        ..Seen::default()
    };
    let report = case.apply(TX, &seen).await;
    let (code, version, _) = failure(&report);
    assert_eq!((code, version), (FailureCode::Cancelled, Some(2)));
    assert_eq!(case.tables(), ["t1"]);
    case.assert_unlocked();
}

#[tokio::test]
async fn a_history_write_that_fails_records_nothing_and_keeps_nothing() {
    let case = Case::new(PG, 1, None, Faults::default());
    case.db.state().history = Some(BTreeMap::new());
    case.db.state().faults.fail_history = true;
    let report = case.apply(TX, &Seen::default()).await;
    let (code, _, message) = failure(&report);
    assert_eq!(code, FailureCode::History, "{message}");
    assert!(message.contains("writing the history table"), "{message}");
    assert!(case.tables().is_empty());
}

mod grouped;
mod records;
mod rule_7;
