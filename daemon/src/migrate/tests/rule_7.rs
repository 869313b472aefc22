//! Rule 7 (DESIGN.md) on the scripted fake database: a statement that gives up waiting for
//! a lock under the guard's timeout runs again, within the tenant's retry budget and its
//! server's, and what its failed attempt left behind is dropped first.

use super::*;

#[tokio::test(start_paused = true)]
async fn rule_7_a_statement_that_gives_up_on_a_lock_runs_again_and_commits_once() {
    for kind in [PG, LITE] {
        let faults = Faults {
            busy: Some("INSERT INTO t2 VALUES (2)"),
            busy_attempts: 2,
            ..Faults::default()
        };
        let case = Case::new(kind, 3, None, faults);
        let seen = Seen::default();
        let report = case.apply(TX, &seen).await;
        assert_eq!(
            report.outcome,
            TenantOutcome::Succeeded,
            "{kind}: {:?}",
            report.failure
        );
        assert_eq!(
            case.tables(),
            ["t1", "t2", "t3"],
            "{kind}: version 2 kept once"
        );
        assert_eq!(case.status(2), Some((RecordStatus::Applied, 3)));
        assert!(
            !case.log().contains(&(2, RecordStatus::Failed)),
            "{kind}: a retry is no failure"
        );
        let retries: Vec<String> = seen
            .events()
            .into_iter()
            .filter(|e| e.starts_with("retry"))
            .collect();
        assert_eq!(retries, ["retry 2 2 1", "retry 2 2 2"], "{kind}");
        // The guard is set inside each migration's transaction.
        let guards = case.db.state().guards.clone();
        assert!(
            guards.iter().all(|g| g == "SET LOCAL lock_timeout 500"),
            "{guards:?}"
        );
        assert_eq!(
            guards.len(),
            5,
            "{kind}: versions 1 and 3 once, version 2 three times"
        );
        case.assert_unlocked();
    }
}

#[tokio::test(start_paused = true)]
async fn rule_7_past_ddl_retry_for_the_tenant_fails_lock_timeout_naming_the_holders() {
    let faults = Faults {
        busy: Some("INSERT INTO t2 VALUES (2)"),
        busy_attempts: usize::MAX,
        ..Faults::default()
    };
    let case = Case::new(PG, 2, None, faults);
    let clock = tokio::time::Instant::now();
    let report = case.apply(TX, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!(
        (code, version),
        (FailureCode::LockTimeout, Some(2)),
        "{message}"
    );
    assert!(
        message.contains("statement 2 of 3") && message.contains("pid 7 (report"),
        "{message}"
    );
    assert!(
        clock.elapsed() >= GUARD.retry_for
            && clock.elapsed() < GUARD.retry_for + Duration::from_secs(31)
    );
    // Nothing of version 2 is kept, and its record lets the next apply retry it.
    assert_eq!(case.tables(), ["t1"]);
    assert_eq!(case.status(2), Some((RecordStatus::Failed, 0)));
    case.assert_unlocked();
}

#[tokio::test(start_paused = true)]
async fn rule_7_outside_a_transaction_only_the_statement_that_gave_up_runs_again() {
    let faults = Faults {
        busy: Some("INSERT INTO t2 VALUES (2)"),
        busy_attempts: 1,
        ..Faults::default()
    };
    let case = Case::new(MY, 2, None, faults);
    let report = case.apply(TX, &Seen::default()).await;
    assert_eq!(
        report.outcome,
        TenantOutcome::Succeeded,
        "{:?}",
        report.failure
    );
    let schema = case.db.state().schema.clone();
    let creates = schema
        .iter()
        .filter(|s| s.starts_with("CREATE TABLE t2"))
        .count();
    assert_eq!(creates, 1, "statement 1 ran once: {schema:?}");
    assert_eq!(
        case.db.state().guards.first().map(String::as_str),
        Some("SET lock_timeout 500")
    );
}

#[tokio::test(start_paused = true)]
async fn rule_7_an_invalid_index_left_by_a_concurrent_build_is_dropped_before_the_retry() {
    let faults = Faults {
        busy: Some("CONCURRENTLY"),
        busy_attempts: 1,
        leaves_invalid_index: true,
        ..Faults::default()
    };
    let mut case = Case::new(PG, 2, None, faults);
    let cic = "-- avocet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t1 (a);\n";
    let mut migrations: Vec<Migration> = case.set.iter().map(|m| (**m).clone()).collect();
    migrations[1].up = parse_script(cic, PG).unwrap();
    case.set = MigrationSet::new(migrations).unwrap();
    let seen = Seen::default();
    let report = case.apply(TX, &seen).await;
    assert_eq!(
        report.outcome,
        TenantOutcome::Succeeded,
        "{:?}",
        report.failure
    );
    let s = case.db.state();
    assert_eq!((s.dropped, s.invalid_index), (1, false));
}

#[tokio::test(start_paused = true)]
async fn rule_7_no_more_than_the_budget_of_one_server_retry_at_once() {
    let dbs: Vec<FakeDb> = (0..6)
        .map(|_| {
            let faults = Faults {
                busy: Some("INSERT INTO t1 VALUES (1)"),
                busy_attempts: 3,
                ..Faults::default()
            };
            FakeDb::new(PG, faults).on_host("db:5432")
        })
        .collect();
    let names: Vec<String> = (0..dbs.len()).map(|i| format!("t{i}")).collect();
    let tenants = Tenant::for_test(
        names
            .iter()
            .map(String::as_str)
            .zip(
                dbs.iter()
                    .map(|d| Arc::new(d.clone()) as Arc<dyn crate::dialect::Database>),
            )
            .collect(),
        2,
    );
    let set = set(PG, 1, None);
    let vars = BTreeMap::new();
    let job = Job {
        set: &set,
        op: RolloutOp::Apply(ApplyOptions::default()),
        transaction: TX,
        dialect: PG,
        lock_timeout: Duration::from_millis(50),
        rollout_id: "r1",
        applied_by: "test",
        vars: &vars,
        guard: GUARD,
        accept_data_loss: false,
        backup: crate::model::BackupWhen::Never,
        read_schema: false,
        expected_schema: None,
    };
    let seen = Seen::default();
    let runs = tenants.iter().map(|t| run(t, &job, &seen));
    let reports = futures::future::join_all(runs).await;
    assert!(
        reports
            .iter()
            .all(|r| r.outcome == TenantOutcome::Succeeded)
    );
    let most = seen.retrying.lock().unwrap().1;
    assert_eq!(
        most, 2,
        "at most max_lock_waiters_per_host tenants of one server retry at once"
    );
}
