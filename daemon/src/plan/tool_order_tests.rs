//! Each tool's order held by the planner: diesel's versions as text, `--to 0` as
//! "everything", Flyway's baseline migrations.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::model::{Code, Script, Severity};

/// A script of one statement, `sql`, with a checksum of its own.
fn script(sql: &str) -> Script {
    Script {
        sql: sql.into(),
        checksum: format!("sum of {sql}"),
        spans: vec![crate::model::StatementSpan {
            bytes: 0..sql.len(),
            line: 1,
            column: 1,
        }],
        ..Script::default()
    }
}

fn migration(version: i64, up: &str) -> Migration {
    Migration {
        version: version.into(),
        name: format!("m{version}"),
        up: script(up),
        down: Some(script("SELECT 1")),
        unordered: false,
    }
}

fn applied(m: &Migration, batch: i64) -> HistoryRecord {
    HistoryRecord {
        version: m.version.clone(),
        name: m.name.clone(),
        checksum: m.up.checksum.clone(),
        down_checksum: m.down.as_ref().map(|d| d.checksum.clone()),
        status: RecordStatus::Applied,
        batch,
        statements_done: 1,
        statements_total: 1,
        error: None,
        direction: Direction::Up,
        no_transaction: None,
    }
}

fn texts(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| s.migration.version.to_string())
        .collect()
}

/// A diesel set as crates.io's: the initial setup, 14-digit versions and, since diesel
/// 2.3, 18-digit ones ending `0000`, later 14-digit ones dated after them.
fn diesel() -> MigrationSet {
    let dirs = [
        "00000000000000",
        "20240313170000",
        "202511191234560000",
        "202512291102420000",
        "20260120162913",
    ];
    let keys: BTreeMap<Version, String> = dirs
        .iter()
        .map(|d| (d.parse().unwrap(), (*d).to_owned()))
        .collect();
    let migrations = keys
        .keys()
        .map(|v| migration(v.as_i64().unwrap(), &format!("CREATE TABLE t{v} (id int);")))
        .collect();
    MigrationSet::new(migrations)
        .unwrap()
        .with_text_order(&keys)
}

#[test]
fn a_diesel_set_runs_plans_to_and_rolls_back_in_diesels_text_order() {
    let set = diesel();
    let fresh = plan_apply(&set, &[], ApplyOptions::default(), DialectKind::Postgres);
    assert_eq!(
        texts(&fresh),
        [
            "0",
            "20240313170000",
            "202511191234560000",
            "202512291102420000",
            "20260120162913"
        ]
    );
    // --to a 14-digit version dated after the 18-digit ones takes them along.
    let to = ApplyOptions {
        target: Some(20260120162913.into()),
        ..Default::default()
    };
    assert_eq!(
        plan_apply(&set, &[], to, DialectKind::Postgres).steps.len(),
        5
    );
    // Half-way as diesel left it: the later 14-digit one is pending, not out of order.
    let half: Vec<HistoryRecord> = set.iter().take(4).map(|m| applied(m, 1)).collect();
    let plan = plan_apply(&set, &half, ApplyOptions::default(), DialectKind::Postgres);
    assert_eq!(texts(&plan), ["20260120162913"]);
    assert!(!plan.blocked(), "{:?}", plan.diagnostics);
    assert_eq!(plan.current_version, Some(202512291102420000.into()));
    let all: Vec<HistoryRecord> = set.iter().map(|m| applied(m, 1)).collect();
    assert_eq!(current_version(&set, &all), Some(20260120162913.into()));
    let back = plan_rollback(
        &set,
        &all,
        RollbackTarget::Steps(2),
        false,
        DialectKind::Postgres,
    );
    assert_eq!(texts(&back), ["20260120162913", "202512291102420000"]);
    let back = plan_rollback(
        &set,
        &all,
        RollbackTarget::ToVersion(202511191234560000.into()),
        false,
        DialectKind::Postgres,
    );
    assert_eq!(texts(&back), ["20260120162913", "202512291102420000"]);
}

#[test]
fn rollback_to_0_rolls_back_version_0_too() {
    let set = diesel();
    let all: Vec<HistoryRecord> = set.iter().map(|m| applied(m, 1)).collect();
    let back = plan_rollback(
        &set,
        &all,
        RollbackTarget::ToVersion(0.into()),
        false,
        DialectKind::Postgres,
    );
    assert_eq!(back.steps.len(), 5, "{:?}", texts(&back));
    assert_eq!(texts(&back).last().map(String::as_str), Some("0"));
}

/// Flyway's layout with a baseline migration: `V1`, `V2`, `B2` (standing for both), `V3`.
fn flyway() -> MigrationSet {
    let baseline = Migration {
        name: "b2".into(),
        down: None,
        ..migration(2, "CREATE TABLE t1 (id int); CREATE TABLE t2 (id int)")
    };
    MigrationSet::new(vec![
        migration(1, "CREATE TABLE t1 (id int);"),
        migration(2, "CREATE TABLE t2 (id int);"),
        migration(3, "CREATE TABLE t3 (id int);"),
    ])
    .unwrap()
    .with_baselines(vec![baseline])
    .unwrap()
}

#[test]
fn a_fresh_tenant_starts_from_the_newest_baseline_and_one_with_history_ignores_it() {
    let set = flyway();
    let fresh = plan_apply(&set, &[], ApplyOptions::default(), DialectKind::Postgres);
    assert_eq!(texts(&fresh), ["2", "3"]);
    assert_eq!(fresh.steps[0].migration.name, "b2", "the baseline runs");
    assert_eq!(pending(&set, &[], None).count(), 2);
    // A target below the baseline: the versioned migrations up to it.
    let to_1 = ApplyOptions {
        target: Some(1.into()),
        ..Default::default()
    };
    let low = plan_apply(&set, &[], to_1, DialectKind::Postgres);
    assert_eq!(texts(&low), ["1"]);
    assert_eq!(low.steps[0].migration.name, "m1");
    // A tenant with history ignores baselines.
    let old = [applied(set.iter().next().unwrap(), 1)];
    let plan = plan_apply(&set, &old, ApplyOptions::default(), DialectKind::Postgres);
    assert_eq!(texts(&plan), ["2", "3"]);
    assert_eq!(
        plan.steps[0].migration.name, "m2",
        "the versioned file runs"
    );
    // After the baseline ran: nothing below it is pending, no drift against V2's file.
    let ran = [applied(set.baseline(&2.into()).unwrap(), 1)];
    let plan = plan_apply(&set, &ran, ApplyOptions::default(), DialectKind::Postgres);
    assert_eq!(texts(&plan), ["3"]);
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let after_v3 = [ran[0].clone(), applied(set.get(3).unwrap(), 2)];
    assert_eq!(pending(&set, &after_v3, None).count(), 0);
    // The last-known state's classification counts as the plan does: a fresh tenant has
    // the baseline and 3 pending (two steps), not the three files.
    let progress: BTreeSet<MigrationKey> = [2.into(), 3.into()].into();
    let known = |applied: &BTreeSet<MigrationKey>| crate::model::KnownState {
        fleet: "f".into(),
        tenant: "t".into(),
        applied: Some(crate::model::Applied::from_versions(&set, applied)),
        current_version: None,
        failed_versions: Vec::new(),
        blocked: false,
        error: None,
        read_at: 0,
    };
    assert_eq!(known(&progress).classify(&set).pending, 0);
    assert_eq!(known(&BTreeSet::new()).classify(&set).pending, 2);
    assert_eq!(crate::model::classify(None, &set).pending, 2);
    // A baseline has no undo.
    let back = plan_rollback(
        &set,
        &after_v3,
        RollbackTarget::ToVersion(0.into()),
        false,
        DialectKind::Postgres,
    );
    assert!(back.blocked());
    assert!(codes(&back).contains(&(Code::Irreversible, Severity::Error)));
}

fn codes(plan: &Plan) -> Vec<(Code, Severity)> {
    plan.diagnostics
        .iter()
        .map(|d| (d.code, d.severity))
        .collect()
}
