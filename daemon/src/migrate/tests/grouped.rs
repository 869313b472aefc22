//! Grouped mode (`transaction = "tenant"`) on the scripted fake database: all of a
//! tenant's steps and their history rows commit at once or not at all, and a failure is
//! blamed on the step that failed, or on none when the commit itself failed.

use super::*;

#[tokio::test]
async fn grouped_mode_is_all_or_nothing_and_blames_the_failing_step() {
    let faults = Faults {
        fail_statement: Some("BAD"),
        ..Faults::default()
    };
    let case = Case::new(PG, 3, Some("BAD THING"), faults);
    let seen = Seen::default();
    let report = case.apply(GROUPED, &seen).await;
    let (code, version, message) = failure(&report);
    assert_eq!((code, version), (FailureCode::MigrationFailed, Some(2)));
    assert!(
        message.contains("none of its 3 migrations is applied"),
        "{message}"
    );
    assert!(case.tables().is_empty());
    assert_eq!(case.status(1), None);
    assert_eq!(case.status(2), Some((RecordStatus::Failed, 0)));
    assert_eq!(
        case.db.state().runs,
        3,
        "the transaction, its rollback, the failure's record"
    );
    let ends: Vec<String> = seen
        .events()
        .into_iter()
        .filter(|e| e.starts_with("end"))
        .collect();
    assert_eq!(ends, ["end 1 failed", "end 2 failed", "end 3 failed"]);
}

#[tokio::test]
async fn grouped_mode_commits_every_step_at_once() {
    let case = Case::new(LITE, 3, None, Faults::default());
    let report = case.apply(GROUPED, &Seen::default()).await;
    assert_eq!(report.outcome, TenantOutcome::Succeeded);
    assert_eq!(case.tables(), ["t1", "t2", "t3"]);
    assert_eq!(case.db.state().runs, 1, "one request, one commit");
}

#[tokio::test]
async fn grouped_mode_a_failed_commit_is_blamed_on_no_single_step() {
    let faults = Faults {
        fail_commit: true,
        ..Faults::default()
    };
    let case = Case::new(PG, 2, None, faults);
    let report = case.apply(GROUPED, &Seen::default()).await;
    let (code, version, message) = failure(&report);
    assert_eq!((code, version), (FailureCode::MigrationFailed, None));
    assert!(
        message.contains("the transaction of versions 1 and 2 failed at commit"),
        "{message}"
    );
    assert_eq!(case.status(1), Some((RecordStatus::Failed, 0)));
    assert_eq!(case.status(2), Some((RecordStatus::Failed, 0)));
    assert!(case.tables().is_empty());
}
