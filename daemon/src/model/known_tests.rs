//! [`KnownState::classify`]: every class, the pending count against a set that grew since
//! the reading, out-of-order and repeatable migrations, baselines, states stored before
//! schema 6 (agreement with the planner's `pending` is checked in `plan`, which may import
//! `model`).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::model::{Migration, Script};

pub(crate) fn script(sql: &str) -> Script {
    Script {
        sql: sql.to_owned(),
        checksum: format!("sum of {sql}"),
        ..Script::default()
    }
}

pub(crate) fn numbered(v: i64) -> Migration {
    Migration {
        version: v.into(),
        name: format!("m{v}"),
        up: script(&format!("CREATE TABLE t{v} (id int);")),
        down: None,
        unordered: false,
    }
}

pub(crate) fn repeatable(name: &str, sql: &str) -> Migration {
    Migration {
        version: MigrationKey::repeatable(name).unwrap(),
        name: name.to_owned(),
        up: script(sql),
        down: None,
        unordered: false,
    }
}

pub(crate) fn set_of(ms: Vec<Migration>) -> MigrationSet {
    MigrationSet::new(ms).unwrap()
}

fn set(n: i64) -> MigrationSet {
    set_of((1..=n).map(numbered).collect())
}

fn v(n: i64) -> Version {
    n.into()
}

pub(crate) fn state(applied: &[i64]) -> KnownState {
    KnownState {
        fleet: "f".into(),
        tenant: "t".into(),
        applied: Some(Applied {
            versions: applied.iter().map(|n| v(*n)).collect(),
            repeatables: BTreeMap::new(),
        }),
        current_version: applied.iter().max().map(|n| v(*n)),
        failed_versions: Vec::new(),
        blocked: false,
        error: None,
        read_at: 7,
    }
}

fn class(k: &KnownState, set: &MigrationSet) -> (TenantClass, u32) {
    let c = k.classify(set);
    (c.class, c.pending)
}

#[test]
fn every_class_and_its_precedence() {
    let s = set(3);
    assert_eq!(class(&state(&[1, 2, 3]), &s), (TenantClass::UpToDate, 0));
    assert_eq!(class(&state(&[1]), &s), (TenantClass::Pending, 2));
    let mut failed = state(&[1]);
    failed.failed_versions = vec![2.into()];
    assert_eq!(class(&failed, &s), (TenantClass::Failed, 2));
    let mut blocked = failed.clone();
    blocked.blocked = true;
    assert_eq!(class(&blocked, &s), (TenantClass::Blocked, 2));
    let mut unreachable = blocked.clone();
    unreachable.error = Some("connection refused".into());
    assert_eq!(class(&unreachable, &s), (TenantClass::Unreachable, 0));
    assert_eq!(unreachable.classify(&s).current_version, None);
    let never = classify(None, &s);
    assert_eq!((never.class, never.pending), (TenantClass::NeverRead, 3));
    assert_eq!(never.current_version, None);
    // A failed record on a tenant with nothing else pending is still failed.
    let mut failed_last = state(&[1, 2, 3]);
    failed_last.failed_versions = vec![3.into()];
    assert_eq!(class(&failed_last, &s).0, TenantClass::Failed);
}

#[test]
fn a_state_read_against_an_older_set_is_judged_against_the_current_one() {
    // Read at 16 of 16, then a 17th file is added (issue 24, item 1).
    let k = state(&(1..=16).collect::<Vec<_>>());
    assert_eq!(class(&k, &set(16)), (TenantClass::UpToDate, 0));
    let c = k.classify(&set(17));
    assert_eq!((c.class, c.pending), (TenantClass::Pending, 1));
    assert_eq!(c.current_version, Some(v(16)));
    // A tenant never read has the whole set pending, whatever its size (item 2).
    assert_eq!(classify(None, &set(16)).pending, 16);
    assert_eq!(classify(None, &set(17)).pending, 17);
    assert_eq!(classify(None, &set(0)).class, TenantClass::NeverRead);
    assert_eq!(classify(None, &set(0)).pending, 0);
}

#[test]
fn an_out_of_order_version_not_applied_is_pending() {
    // 1, 2 and 4 applied: current is 4, the latest, yet 3 is pending.
    let k = state(&[1, 2, 4]);
    let c = k.classify(&set(4));
    assert_eq!(c.current_version, Some(v(4)));
    assert_eq!((c.class, c.pending), (TenantClass::Pending, 1));
    // A version applied that the set no longer has is not pending, and still current.
    let gone = state(&[1, 2, 3, 4, 9]);
    let c = gone.classify(&set(4));
    assert_eq!((c.class, c.pending), (TenantClass::UpToDate, 0));
    assert_eq!(c.current_version, Some(v(9)));
}

#[test]
fn a_repeatable_is_pending_until_applied_and_again_when_its_file_changes() {
    let view = || repeatable("view", "CREATE VIEW v AS SELECT 1;");
    let s = set_of(vec![numbered(1), view()]);
    let r = view().version;
    let mut k = state(&[1]);
    assert_eq!(class(&k, &s), (TenantClass::Pending, 1), "never applied");
    k.applied
        .as_mut()
        .unwrap()
        .repeatables
        .insert(r, view().up.checksum);
    assert_eq!(class(&k, &s), (TenantClass::UpToDate, 0));
    let changed = set_of(vec![
        numbered(1),
        repeatable("view", "CREATE VIEW v AS SELECT 2;"),
    ]);
    assert_eq!(
        class(&k, &changed),
        (TenantClass::Pending, 1),
        "file changed"
    );
    // A repeatable is never the current version.
    assert_eq!(k.classify(&s).current_version, Some(v(1)));
    let only = state(&[]);
    assert_eq!(only.classify(&s).current_version, None);
}

#[test]
fn baselines_cover_the_versions_below_them() {
    let s = set_of((1..=5).map(numbered).collect())
        .with_baselines(vec![numbered(3)])
        .unwrap();
    // A fresh tenant runs the baseline 3, then 4 and 5.
    assert_eq!(classify(None, &s).pending, 3);
    assert_eq!(class(&state(&[]), &s), (TenantClass::Pending, 3));
    // Baseline 3 applied: 1 and 2 are covered.
    assert_eq!(class(&state(&[3]), &s), (TenantClass::Pending, 2));
    assert_eq!(class(&state(&[3, 4, 5]), &s), (TenantClass::UpToDate, 0));
}

#[test]
fn a_state_stored_before_schema_6_is_judged_from_its_version() {
    let mut k = state(&[]);
    k.applied = None;
    k.current_version = Some(v(16));
    let c = k.classify(&set(17));
    assert_eq!(
        (c.class, c.pending, c.current_version),
        (TenantClass::Pending, 1, Some(v(16)))
    );
    assert_eq!(class(&k, &set(16)), (TenantClass::UpToDate, 0));
    k.current_version = None;
    assert_eq!(class(&k, &set(4)), (TenantClass::Pending, 4));
    // Its failed versions are not taken as applied.
    k.current_version = Some(v(3));
    k.failed_versions = vec![3.into()];
    assert_eq!(class(&k, &set(3)), (TenantClass::Failed, 1));
}

#[test]
fn applied_from_a_runs_versions_takes_the_sets_checksums() {
    let s = set_of(vec![numbered(1), repeatable("view", "SELECT 1;")]);
    let r = MigrationKey::repeatable("view").unwrap();
    let applied = Applied::from_versions(&s, &BTreeSet::from([1.into(), r.clone()]));
    assert_eq!(applied.versions, BTreeSet::from([v(1)]));
    assert_eq!(
        applied.repeatables.get(&r),
        Some(&s.get(r).unwrap().up.checksum)
    );
}

#[test]
fn the_tally_counts_each_tenant_once() {
    let s = set(3);
    let mut t = Tally::default();
    t.add(&state(&[1, 2, 3]).classify(&s), 2, Some(5));
    t.add(&state(&[1]).classify(&s), 1, Some(3));
    t.add(&classify(None, &s), 4, None);
    let mut down = state(&[]);
    down.error = Some("refused".into());
    t.add(&down.classify(&s), 1, Some(9));
    assert_eq!(t.count(TenantClass::UpToDate), 2);
    assert_eq!(t.count(TenantClass::Pending), 1);
    assert_eq!(t.count(TenantClass::NeverRead), 4);
    assert_eq!(t.count(TenantClass::Unreachable), 1);
    assert_eq!(t.count(TenantClass::Failed), 0);
    assert_eq!(t.oldest_read_at, Some(3));
    assert_eq!(
        t.versions.into_iter().collect::<Vec<_>>(),
        vec![(Some(v(1)), 1), (Some(v(3)), 2)]
    );
}
