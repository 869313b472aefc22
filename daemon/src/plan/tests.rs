use super::*;
use crate::{
    catalog::parse_script,
    model::{Code, Severity},
};

fn migration(version: i64, up: &str, down: Option<&str>) -> Migration {
    Migration {
        version: version.into(),
        name: format!("m{version}"),
        up: parse_script(up, DialectKind::Postgres).unwrap(),
        down: down.map(|d| parse_script(d, DialectKind::Postgres).unwrap()),
        unordered: false,
    }
}

fn set(n: i64) -> MigrationSet {
    MigrationSet::new(
        (1..=n)
            .map(|v| {
                migration(
                    v,
                    &format!("CREATE TABLE t{v} (id int);"),
                    Some("SELECT 1;"),
                )
            })
            .collect(),
    )
    .unwrap()
}

fn record(set: &MigrationSet, version: i64, status: RecordStatus, batch: i64) -> HistoryRecord {
    let m = set.get(version).unwrap();
    HistoryRecord {
        version: version.into(),
        name: m.name.clone(),
        checksum: m.up.checksum.clone(),
        down_checksum: m.down.as_ref().map(|d| d.checksum.clone()),
        status,
        batch,
        statements_done: 1,
        statements_total: 1,
        error: None,
        direction: Direction::Up,
        no_transaction: None,
    }
}

fn versions(plan: &Plan) -> Vec<i64> {
    plan.steps
        .iter()
        .filter_map(|s| s.migration.version.as_i64())
        .collect()
}

fn codes(plan: &Plan) -> Vec<(Code, Severity)> {
    plan.diagnostics
        .iter()
        .map(|d| (d.code, d.severity))
        .collect()
}

#[test]
fn pending_versions_run_in_order_up_to_the_target() {
    let set = set(5);
    let history = vec![record(&set, 1, RecordStatus::Applied, 1)];
    let plan = plan_apply(
        &set,
        &history,
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert_eq!(versions(&plan), [2, 3, 4, 5]);
    assert_eq!(plan.current_version, Some(1.into()));
    assert!(!plan.blocked());
    let opts = ApplyOptions {
        target: Some(3.into()),
        ..Default::default()
    };
    assert_eq!(
        versions(&plan_apply(&set, &history, opts, DialectKind::Postgres)),
        [2, 3]
    );
}

#[test]
fn nothing_runs_when_everything_is_applied() {
    let set = set(3);
    let history: Vec<_> = (1..=3)
        .map(|v| record(&set, v, RecordStatus::Applied, 1))
        .collect();
    let plan = plan_apply(&set, &history, ApplyOptions::default(), DialectKind::Sqlite);
    assert!(plan.steps.is_empty());
    assert!(plan.diagnostics.is_empty());
}

#[test]
fn drift_and_missing_versions_are_errors() {
    let set = set(3);
    let mut changed = record(&set, 1, RecordStatus::Applied, 1);
    changed.checksum = "0".repeat(64);
    let mut gone = record(&set, 2, RecordStatus::Applied, 1);
    gone.version = 9.into();
    let plan = plan_apply(
        &set,
        &[changed, gone],
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert!(plan.blocked());
    assert!(codes(&plan).contains(&(Code::ChecksumMismatch, Severity::Error)));
    assert!(codes(&plan).contains(&(Code::MissingMigration, Severity::Error)));
}

#[test]
fn an_edited_or_removed_down_script_is_a_warning_and_an_unknown_one_is_nothing() {
    let set = set(3);
    let mut edited = record(&set, 1, RecordStatus::Applied, 1);
    edited.down_checksum = Some("1".repeat(64));
    let mut unknown = record(&set, 2, RecordStatus::Applied, 1);
    unknown.down_checksum = None;
    let same = record(&set, 3, RecordStatus::Applied, 1);
    let history = [edited, unknown, same];
    let plan = plan_apply(
        &set,
        &history,
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert_eq!(
        codes(&plan),
        [(Code::DownChecksumMismatch, Severity::Warning)],
        "{:?}",
        plan.diagnostics
    );
    assert_eq!(plan.diagnostics[0].version, Some(1.into()));
    assert!(!plan.blocked(), "a down drift does not block");
    // The rollback's plan says it too, and still runs the file as it is now.
    let rollback = plan_rollback(
        &set,
        &history,
        RollbackTarget::Steps(3),
        false,
        DialectKind::Postgres,
    );
    assert_eq!(versions(&rollback), [3, 2, 1]);
    assert!(codes(&rollback).contains(&(Code::DownChecksumMismatch, Severity::Warning)));
    // A down script removed from the set since the record: the warning says so.
    let without_down =
        MigrationSet::new(vec![migration(1, "CREATE TABLE t1 (id int);", None)]).unwrap();
    let plan = plan_apply(
        &without_down,
        &[record(&set, 1, RecordStatus::Applied, 1)],
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert_eq!(
        codes(&plan),
        [(Code::DownChecksumMismatch, Severity::Warning)]
    );
    assert!(
        plan.diagnostics[0].message.contains("no down script"),
        "{}",
        plan.diagnostics[0].message
    );
}

/// A checksum read from a tenant may hold anything: one of multi-byte characters is
/// shortened by characters, not sliced by bytes (which panicked).
#[test]
fn a_non_ascii_checksum_from_a_tenant_is_reported_not_a_panic() {
    let set = set(1);
    let mut changed = record(&set, 1, RecordStatus::Applied, 1);
    changed.checksum = "éééééééééééééééé".into();
    let plan = plan_apply(
        &set,
        &[changed],
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    let drift = plan
        .diagnostics
        .iter()
        .find(|d| d.code == Code::ChecksumMismatch)
        .expect("drift reported");
    assert!(
        drift.message.contains("éééééééééééé applied"),
        "{}",
        drift.message
    );
}

#[test]
fn only_a_failed_transactional_up_is_retried() {
    let set = set(2);
    let mut failed = record(&set, 1, RecordStatus::Failed, 1);
    failed.statements_done = 0;
    let plan = plan_apply(
        &set,
        &[failed.clone()],
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert_eq!(versions(&plan), [1, 2]);
    assert_eq!(codes(&plan), [(Code::FailedMigration, Severity::Warning)]);

    // Outside a transaction even a first statement that failed may have left something
    // (an invalid index from CREATE INDEX CONCURRENTLY): repair first.
    let plan = plan_apply(
        &set,
        &[failed.clone()],
        ApplyOptions::default(),
        DialectKind::Mysql,
    );
    assert_eq!(plan.first_error().unwrap().code, Code::PartiallyApplied);
    let marked = MigrationSet::new(vec![migration(
        1,
        "-- avocet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
        None,
    )])
    .unwrap();
    let mut cic = failed.clone();
    cic.checksum = marked.get(1).unwrap().up.checksum.clone();
    let plan = plan_apply(
        &marked,
        &[cic],
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert_eq!(plan.first_error().unwrap().code, Code::PartiallyApplied);

    // A failed rollback is never an up to retry.
    let mut down = failed.clone();
    down.direction = Direction::Down;
    let plan = plan_apply(
        &set,
        &[down],
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert!(plan.blocked());
    assert!(plan.first_error().unwrap().message.contains("down"));

    failed.statements_done = 1;
    let plan = plan_apply(&set, &[failed], ApplyOptions::default(), DialectKind::Mysql);
    assert_eq!(plan.first_error().unwrap().code, Code::PartiallyApplied);

    let running = record(&set, 1, RecordStatus::Running, 1);
    let plan = plan_apply(
        &set,
        &[running],
        ApplyOptions::default(),
        DialectKind::Mysql,
    );
    assert_eq!(plan.first_error().unwrap().code, Code::RunningMigration);
}

#[test]
fn out_of_order_is_refused_unless_allowed() {
    let set = set(3);
    let history = vec![
        record(&set, 1, RecordStatus::Applied, 1),
        record(&set, 3, RecordStatus::Applied, 1),
    ];
    let plan = plan_apply(
        &set,
        &history,
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert_eq!(codes(&plan), [(Code::OutOfOrder, Severity::Error)]);
    let allowed = ApplyOptions {
        allow_out_of_order: true,
        ..Default::default()
    };
    let plan = plan_apply(&set, &history, allowed, DialectKind::Postgres);
    assert!(!plan.blocked());
    assert_eq!(versions(&plan), [2]);
}

#[test]
fn an_unordered_refinery_migration_runs_below_the_newest_applied_one() {
    let mut unordered = migration(2, "CREATE TABLE t2 (id int);", None);
    unordered.unordered = true;
    let set = MigrationSet::new(vec![
        migration(1, "CREATE TABLE t1 (id int);", None),
        unordered,
        migration(3, "CREATE TABLE t3 (id int);", None),
    ])
    .unwrap();
    let history = vec![
        record(&set, 1, RecordStatus::Applied, 1),
        record(&set, 3, RecordStatus::Applied, 1),
    ];
    let plan = plan_apply(
        &set,
        &history,
        ApplyOptions::default(),
        DialectKind::Postgres,
    );
    assert!(codes(&plan).is_empty(), "{:?}", plan.diagnostics);
    assert_eq!(versions(&plan), [2]);
}

#[test]
fn no_transaction_marker_and_mysql_leave_the_transaction_path() {
    let set = MigrationSet::new(vec![
        migration(
            1,
            "-- avocet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
            None,
        ),
        migration(2, "DROP TABLE old;", None),
    ])
    .unwrap();
    let plan = plan_apply(&set, &[], ApplyOptions::default(), DialectKind::Postgres);
    assert!(!plan.steps[0].transactional);
    assert!(plan.steps[1].transactional);
    assert!(codes(&plan).contains(&(Code::NoTransaction, Severity::Warning)));
    // A destructive migration blocks its tenant unless accepted.
    assert!(codes(&plan).contains(&(Code::Destructive, Severity::Error)));
    assert!(plan.blocked());
    let accepted = ApplyOptions {
        accept_data_loss: true,
        ..Default::default()
    };
    let plan = plan_apply(&set, &[], accepted, DialectKind::Postgres);
    assert!(codes(&plan).contains(&(Code::Destructive, Severity::Warning)));
    assert!(!plan.blocked());
    let plan = plan_apply(&set, &[], ApplyOptions::default(), DialectKind::Mysql);
    assert!(plan.steps.iter().all(|s| !s.transactional));
}

#[test]
fn rollback_by_steps_version_and_last_batch() {
    let set = set(5);
    let history: Vec<_> = (1..=5)
        .map(|v| record(&set, v, RecordStatus::Applied, if v <= 3 { 1 } else { 2 }))
        .collect();
    let plan = |t| plan_rollback(&set, &history, t, false, DialectKind::Postgres);
    assert_eq!(versions(&plan(RollbackTarget::Steps(2))), [5, 4]);
    assert_eq!(
        versions(&plan(RollbackTarget::ToVersion(2.into()))),
        [5, 4, 3]
    );
    assert_eq!(versions(&plan(RollbackTarget::LastBatch)), [5, 4]);
    assert_eq!(plan(RollbackTarget::Steps(1)).steps[0].batch, Some(2));
    assert!(plan(RollbackTarget::Steps(9)).steps.len() == 5);
}

#[test]
fn rollback_without_down_is_an_error_before_anything_runs() {
    let set = MigrationSet::new(vec![
        migration(1, "SELECT 1;", Some("SELECT 1;")),
        migration(2, "SELECT 2;", None),
    ])
    .unwrap();
    let history = vec![
        record(&set, 1, RecordStatus::Applied, 1),
        record(&set, 2, RecordStatus::Applied, 1),
    ];
    let plan = plan_rollback(
        &set,
        &history,
        RollbackTarget::Steps(2),
        false,
        DialectKind::Sqlite,
    );
    assert!(plan.blocked());
    assert_eq!(plan.first_error().unwrap().code, Code::Irreversible);
    assert_eq!(plan.first_error().unwrap().version, Some(2.into()));
}

/// A set of versions 1 and 2 plus the repeatable `views` running `view_sql`.
fn set_with_repeatable(view_sql: &str) -> MigrationSet {
    let mut migrations: Vec<Migration> = (1..=2)
        .map(|v| {
            migration(
                v,
                &format!("CREATE TABLE t{v} (id int);"),
                Some("SELECT 1;"),
            )
        })
        .collect();
    migrations.push(Migration {
        version: MigrationKey::repeatable("views").unwrap(),
        name: "views".into(),
        up: parse_script(view_sql, DialectKind::Postgres).unwrap(),
        down: None,
        unordered: false,
    });
    MigrationSet::new(migrations).unwrap()
}

fn step_keys(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| format!("{} {}", s.migration.version, s.direction.as_str()))
        .collect()
}

#[test]
fn repeatables_run_last_and_again_only_when_their_checksum_changes() {
    let first = set_with_repeatable("CREATE OR REPLACE VIEW v AS SELECT 1;");
    let apply = |set: &MigrationSet, history: &[HistoryRecord], target: Option<i64>| {
        let opts = ApplyOptions {
            target: target.map(Version::from),
            ..Default::default()
        };
        plan_apply(set, history, opts, DialectKind::Postgres)
    };
    let plan = apply(&first, &[], None);
    assert_eq!(step_keys(&plan), ["1 up", "2 up", "R__views up"]);
    // An apply to a numbered version runs no repeatable.
    assert_eq!(step_keys(&apply(&first, &[], Some(2))), ["1 up", "2 up"]);

    let views = first
        .get(MigrationKey::repeatable("views").unwrap())
        .unwrap();
    let mut history = vec![
        record(&first, 1, RecordStatus::Applied, 1),
        record(&first, 2, RecordStatus::Applied, 1),
    ];
    history.push(HistoryRecord {
        version: views.version.clone(),
        name: views.name.clone(),
        checksum: views.up.checksum.clone(),
        down_checksum: None,
        ..history[0].clone()
    });
    let unchanged = apply(&first, &history, None);
    assert!(unchanged.steps.is_empty(), "{:?}", step_keys(&unchanged));
    assert_eq!(unchanged.current_version, Some(2.into()));

    // The file changed: it runs again, and its drift is no error.
    let edited = set_with_repeatable("CREATE OR REPLACE VIEW v AS SELECT 2;");
    let plan = apply(&edited, &history, None);
    assert_eq!(step_keys(&plan), ["R__views up"]);
    assert!(!plan.blocked(), "{:?}", codes(&plan));
    // A versioned migration added later runs before it and is not out of order.
    let mut later: Vec<Migration> = edited.iter().map(|m| (**m).clone()).collect();
    later.push(migration(3, "CREATE TABLE t3 (id int);", None));
    let later = MigrationSet::new(later).unwrap();
    let plan = apply(&later, &history, None);
    assert_eq!(step_keys(&plan), ["3 up", "R__views up"]);
    assert!(codes(&plan).is_empty(), "{:?}", codes(&plan));

    // A rollback never chooses a repeatable, whatever the target.
    for (target, expected) in [
        (RollbackTarget::Steps(1), &["2 down"][..]),
        (RollbackTarget::LastBatch, &["2 down", "1 down"]),
        (RollbackTarget::ToVersion(1.into()), &["2 down"]),
    ] {
        let plan = plan_rollback(
            &first,
            &history,
            target.clone(),
            false,
            DialectKind::Postgres,
        );
        assert_eq!(step_keys(&plan), expected, "{target:?}");
    }
    // When the last apply ran only the edited repeatable, the last batch undoes nothing,
    // not the deploy before it.
    let last_batch = |history: &[HistoryRecord]| {
        let plan = plan_rollback(
            &edited,
            history,
            RollbackTarget::LastBatch,
            false,
            DialectKind::Postgres,
        );
        step_keys(&plan)
    };
    history[2].batch = 2;
    assert!(last_batch(&history).is_empty(), "{history:?}");
    // A batch that ran 2 and the repeatable: its numbered part is undone, and once it is,
    // the batch before comes next (the repeatable's row keeping batch 2 does not hold it).
    history[1].batch = 2;
    assert_eq!(last_batch(&history), ["2 down"]);
    history[1].status = RecordStatus::RolledBack;
    assert_eq!(last_batch(&history), ["1 down"]);
}
