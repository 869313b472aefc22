//! The one classification of a tenant's last-known state
//! ([`KnownState::classify`](crate::model::KnownState::classify)) counts as pending what the
//! planner would run: checked here, where both may be named.

use crate::model::{
    Applied, Direction, HistoryRecord, Migration, RecordStatus,
    known::tests::{numbered, repeatable, set_of, state},
};

/// The pending count agrees with the planner's on the same history (the rule it copies).
#[test]
fn the_pending_count_is_the_planners() {
    let record = |m: &Migration, status| HistoryRecord {
        version: m.version.clone(),
        name: m.name.clone(),
        checksum: m.up.checksum.clone(),
        down_checksum: None,
        status,
        batch: 1,
        statements_done: 1,
        statements_total: 1,
        error: None,
        direction: Direction::Up,
        no_transaction: None,
    };
    let view = repeatable("view", "SELECT 1;");
    let s = set_of((1..=5).map(numbered).chain([view.clone()]).collect())
        .with_baselines(vec![numbered(3)])
        .unwrap();
    let cases: Vec<Vec<(Migration, RecordStatus)>> = vec![
        vec![],
        vec![(numbered(1), RecordStatus::Applied)],
        vec![
            (numbered(1), RecordStatus::Applied),
            (numbered(4), RecordStatus::Applied),
        ],
        vec![
            (numbered(3), RecordStatus::Applied),
            (view.clone(), RecordStatus::Applied),
        ],
        vec![
            (numbered(1), RecordStatus::Applied),
            (numbered(2), RecordStatus::Failed),
        ],
        vec![(repeatable("view", "SELECT 2;"), RecordStatus::Applied)],
    ];
    for history in cases {
        let records: Vec<HistoryRecord> = history.iter().map(|(m, st)| record(m, *st)).collect();
        let mut applied = Applied::default();
        for r in records.iter().filter(|r| r.status == RecordStatus::Applied) {
            match r.version.version() {
                None => applied
                    .repeatables
                    .insert(r.version.clone(), r.checksum.clone())
                    .map(drop),
                Some(v) => applied.versions.insert(v).then_some(()),
            };
        }
        let mut k = state(&[]);
        k.applied = Some(applied);
        let planned = super::pending(&s, &records, None).count() as u32;
        assert_eq!(k.classify(&s).pending, planned, "history {records:?}");
    }
}
