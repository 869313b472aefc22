//! History records written without running a migration, on the scripted fake database:
//! a baseline writes every record in one transaction or none, and a repair rewrites a
//! failed record, logs it, and is a no-op when repeated.

use super::*;

#[tokio::test]
async fn baseline_writes_every_record_in_one_transaction_or_none() {
    let case = Case::new(MY, 3, None, Faults::default());
    let done = baseline(
        &case.tenant,
        Duration::from_millis(50),
        &case.set,
        BaselineSource::UpTo(2.into()),
        "test",
    )
    .await;
    assert_eq!(done.unwrap(), 2);
    assert_eq!(case.status(2), Some((RecordStatus::Applied, 3)));
    assert!(case.tables().is_empty(), "nothing ran");
    assert_eq!(case.db.state().runs, 1);

    let failing = Case::new(
        MY,
        3,
        None,
        Faults {
            fail_statement: Some("COMMIT"),
            ..Faults::default()
        },
    );
    failing.db.state().faults.fail_history = true;
    let refused = baseline(
        &failing.tenant,
        Duration::from_millis(50),
        &failing.set,
        BaselineSource::UpTo(3.into()),
        "test",
    )
    .await;
    assert!(refused.is_err());
    assert_eq!(
        failing.status(1),
        None,
        "no record of a baseline that failed"
    );
    failing.assert_unlocked();
}

#[tokio::test]
async fn repair_rewrites_a_failed_record_logs_it_and_a_repeat_is_a_no_op() {
    let faults = Faults {
        fail_statement: Some("BAD"),
        ..Faults::default()
    };
    let case = Case::new(MY, 2, Some("BAD THING"), faults);
    case.apply(TX, &Seen::default()).await;
    let before = repair(
        &case.tenant,
        Duration::from_millis(50),
        "op",
        &case.set,
        2.into(),
        RepairAction::MarkRolledBack,
    )
    .await;
    let repaired = before.unwrap();
    assert_eq!(
        (repaired.previous, repaired.changed),
        (Some(RecordStatus::Failed), true)
    );
    let logged = case.log().len();
    assert_eq!(case.status(2), Some((RecordStatus::RolledBack, 1)));
    assert_eq!(case.log().last(), Some(&(2, RecordStatus::RolledBack)));
    let again = repair(
        &case.tenant,
        Duration::from_millis(50),
        "op",
        &case.set,
        2.into(),
        RepairAction::MarkRolledBack,
    )
    .await;
    let again = again.expect("a repeated repair is a no-op, not an error");
    assert_eq!(
        (again.previous, again.changed),
        (Some(RecordStatus::RolledBack), false)
    );
    assert_eq!(case.log().len(), logged, "a no-op writes no log row");
    case.assert_unlocked();
}
