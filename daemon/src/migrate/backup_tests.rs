//! When the tenant engine asks for a backup (issue 31), on the scripted fake database: right
//! before the first step the fleet's policy covers, under the lock, once per run; a failed
//! backup fails the tenant `backup_failed` before that step, with the steps before it kept.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;

use super::{
    Job, Observer, StepOutcome,
    fake::{FakeDb, Faults},
    run,
};
use crate::{
    fleet::Tenant,
    model::{
        ApplyOptions, BackupWhen, DialectKind, FailureCode, LockGuard, LockRetry, Migration,
        MigrationSet, RolloutOp, Script, StatementSpan, Step, TenantOutcome, TransactionMode,
        Version,
    },
};

/// A script of the one statement `sql`, destructive as the lint would say.
fn script(sql: &str, destructive: bool) -> Script {
    use sha2::Digest as _;
    Script {
        sql: format!("{sql};\n"),
        checksum: hex::encode(sha2::Sha256::digest(sql.as_bytes())),
        spans: vec![StatementSpan {
            bytes: 0..sql.len(),
            line: 1,
            column: 1,
        }],
        destructive,
        ..Script::default()
    }
}

/// 1 creates `a`, 2 creates `b`, 3 drops `a` (destructive), 4 drops `b` (destructive).
fn set() -> MigrationSet {
    let scripts = [
        ("CREATE TABLE a (x int)", false),
        ("CREATE TABLE b (x int)", false),
        ("DROP TABLE a", true),
        ("DROP TABLE b", true),
    ];
    let migrations = scripts
        .iter()
        .enumerate()
        .map(|(i, (up, destructive))| Migration {
            version: (i as i64 + 1).into(),
            name: format!("m{}", i + 1),
            up: script(up, *destructive),
            down: None,
            unordered: false,
        })
        .collect();
    MigrationSet::new(migrations).unwrap()
}

/// What the engine told its caller; fails the backup when `fail`.
#[derive(Default)]
struct Seen {
    events: Mutex<Vec<String>>,
    fail: bool,
}

#[async_trait]
impl Observer for Seen {
    fn lock_waited(&self, _: &Tenant, _: Duration, _: bool) {}

    async fn migration_started(&self, _: &Tenant, step: &Step) {
        self.push(format!("start {}", step.migration.version));
    }

    async fn lock_retry(&self, _: &Tenant, _: &LockRetry) {}

    async fn migration_finished(&self, _: &Tenant, step: &Step, _: &StepOutcome) {
        self.push(format!("end {}", step.migration.version));
    }

    async fn backup(
        &self,
        _: &Tenant,
        before: &Step,
        version: Option<Version>,
    ) -> Result<(), String> {
        let at = version.map_or_else(|| "none".to_owned(), |v| v.to_string());
        self.push(format!(
            "backup before {} at {at}",
            before.migration.version
        ));
        match self.fail {
            true => Err("pg_dump not found in PATH".into()),
            false => Ok(()),
        }
    }

    fn stop_requested(&self) -> bool {
        false
    }
}

impl Seen {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

const GUARD: LockGuard = LockGuard {
    lock_timeout: Duration::from_millis(500),
    retry_for: Duration::from_secs(60),
    statement_timeout: None,
};

async fn apply(
    when: BackupWhen,
    mode: TransactionMode,
    seen: &Seen,
) -> (super::TenantReport, FakeDb) {
    let db = FakeDb::new(DialectKind::Postgres, Faults::default());
    let tenant = Tenant::for_test(vec![("t1", Arc::new(db.clone()))], 2).remove(0);
    let set = set();
    let vars = BTreeMap::new();
    let job = Job {
        set: &set,
        op: RolloutOp::Apply(ApplyOptions {
            accept_data_loss: true,
            ..ApplyOptions::default()
        }),
        transaction: mode,
        dialect: DialectKind::Postgres,
        lock_timeout: Duration::from_millis(50),
        rollout_id: "r1",
        applied_by: "test",
        vars: &vars,
        guard: GUARD,
        accept_data_loss: false,
        backup: when,
        read_schema: false,
        expected_schema: None,
    };
    let report = run(&tenant, &job, seen).await;
    assert_eq!(
        db.state().lock_holder,
        None,
        "the tenant lock was left held"
    );
    (report, db)
}

fn events(seen: &Seen) -> Vec<String> {
    seen.events.lock().unwrap().clone()
}

#[tokio::test]
async fn destructive_backs_up_once_right_before_the_first_destructive_step() {
    let seen = Seen::default();
    let (report, _) = apply(BackupWhen::Destructive, TransactionMode::Migration, &seen).await;
    assert_eq!(report.outcome, TenantOutcome::Succeeded);
    assert_eq!(
        events(&seen),
        [
            "start 1",
            "end 1",
            "start 2",
            "end 2",
            "backup before 3 at 2",
            "start 3",
            "end 3",
            "start 4",
            "end 4"
        ]
    );
}

#[tokio::test]
async fn always_backs_up_before_the_first_step_and_never_not_at_all() {
    let seen = Seen::default();
    apply(BackupWhen::Always, TransactionMode::Migration, &seen).await;
    assert_eq!(events(&seen)[0], "backup before 1 at none");
    assert_eq!(
        events(&seen)
            .iter()
            .filter(|e| e.starts_with("backup"))
            .count(),
        1
    );
    let seen = Seen::default();
    apply(BackupWhen::Never, TransactionMode::Migration, &seen).await;
    assert!(!events(&seen).iter().any(|e| e.starts_with("backup")));
}

#[tokio::test]
async fn a_failed_backup_fails_the_tenant_before_the_destructive_step() {
    let seen = Seen {
        fail: true,
        ..Seen::default()
    };
    let (report, db) = apply(BackupWhen::Destructive, TransactionMode::Migration, &seen).await;
    assert_eq!(report.outcome, TenantOutcome::Failed);
    let f = report.failure.expect("a failure");
    assert_eq!(f.code, FailureCode::BackupFailed);
    assert_eq!(f.version, Some(3.into()));
    assert!(f.message.contains("pg_dump not found"), "{}", f.message);
    assert_eq!(report.migrations_run, 2);
    assert_eq!(
        report.current_version,
        Some(Version::from(2)),
        "the steps before it stay applied"
    );
    assert!(!events(&seen).contains(&"start 3".to_owned()));
    let s = db.state();
    let history = s.history.as_ref().expect("history");
    assert!(!history.contains_key(&3.into()), "{history:?}");
}

#[tokio::test]
async fn grouped_mode_backs_up_before_its_one_transaction() {
    let seen = Seen {
        fail: true,
        ..Seen::default()
    };
    let (report, db) = apply(BackupWhen::Destructive, TransactionMode::Tenant, &seen).await;
    assert_eq!(
        report.failure.map(|f| f.code),
        Some(FailureCode::BackupFailed)
    );
    assert_eq!(events(&seen), ["backup before 3 at none"]);
    assert!(db.state().history.as_ref().is_none_or(|h| h.is_empty()));
}
