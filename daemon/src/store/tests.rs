//! The control store's queries on a real SQLite store (a file per test).

use super::{Lease, NewRollout, Store, Write, now_ms};
use crate::model::{
    ApplyOptions, EventKind, RolloutOp, RolloutSpec, RolloutState, RolloutStep, SetDigest,
    Strategy, TenantWork, TransactionMode, WorkState,
};

/// A store in `dir` holding one rollout `r`, running, whose two tenants are in `states`.
pub(super) async fn store_with(dir: &tempfile::TempDir, states: [WorkState; 2]) -> Store {
    let url = format!("sqlite://{}/control.db?mode=rwc", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let spec = RolloutSpec {
        accept_data_loss: false,
        require_expected_schema: false,
        fleet: "f".into(),
        op: RolloutOp::Apply(ApplyOptions::default()),
        strategy: Strategy::default(),
        transaction: TransactionMode::default(),
        dry_run: false,
        set_digest: SetDigest::default(),
    };
    let works: Vec<TenantWork> = (0..2)
        .map(|i| TenantWork {
            tenant: format!("t{i}"),
            position: i,
            wave: 0,
            state: WorkState::Pending,
            attempts: 0,
            last_error: None,
        })
        .collect();
    let new = NewRollout {
        id: "r",
        spec: &spec,
        request_json: "{}",
        created_by: "test",
        method: "Apply",
        waves: 1,
        works: &works,
    };
    store.create_rollout(&new).await.unwrap();
    let running = store
        .change_state("r", RolloutStep::Start, |state| EventKind::StateChanged {
            state,
            by: "test".into(),
            reason: String::new(),
        })
        .await
        .unwrap();
    assert!(
        matches!(running, super::Changed::To(RolloutState::Running, _)),
        "{running:?}"
    );
    for (i, state) in states.iter().enumerate() {
        sqlx::query(
            "UPDATE rollout_tenants SET state = $1 WHERE rollout_id = 'r' AND position = $2",
        )
        .bind(state.as_str())
        .bind(i as i64)
        .execute(&store.pool)
        .await
        .unwrap();
    }
    store
}

/// Rollouts joinable by a replica counting as alive those seen within `lease_ms`.
async fn joinable(store: &Store, lease_ms: i64) -> Vec<String> {
    let found = store.joinable(lease_ms).await.unwrap();
    found.into_iter().map(|r| r.id).collect()
}

/// The end of work item `position` of rollout `r` in `state` under `lease`.
fn ended(position: u32, lease: Option<Lease>, state: WorkState) -> Write {
    Write::Work {
        rollout_id: "r".into(),
        position,
        lease,
        state,
        error: None,
        event: None,
    }
}

#[tokio::test]
async fn a_lost_lease_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(&dir, [WorkState::Pending, WorkState::Pending]).await;
    // a claims both on a lease that is over at once (as if it stalled past it).
    let a = store.claim("r", 0, "a", -1, 8, None).await.unwrap();
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|c| c.lease.epoch == 1));
    // b claims them again: a new epoch each.
    let b = store.claim("r", 0, "b", 60_000, 8, None).await.unwrap();
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|c| c.lease.epoch == 2 && c.lease.owner == "b"));
    // a wakes up and writes its results: refused, the counters do not move.
    store
        .write(&[
            ended(0, Some(a[0].lease.clone()), WorkState::Failed),
            ended(1, Some(a[1].lease.clone()), WorkState::Succeeded),
        ])
        .await
        .unwrap();
    let r = store.rollout("r").await.unwrap().unwrap();
    assert_eq!((r.succeeded, r.failed), (0, 0));
    // b's are recorded, each tenant counted once; a's again (late twice) change nothing.
    store
        .write(&[
            ended(0, Some(b[0].lease.clone()), WorkState::Succeeded),
            ended(1, Some(b[1].lease.clone()), WorkState::Succeeded),
            ended(1, Some(a[1].lease.clone()), WorkState::Failed),
            ended(0, Some(b[0].lease.clone()), WorkState::Succeeded),
        ])
        .await
        .unwrap();
    let r = store.rollout("r").await.unwrap().unwrap();
    assert_eq!((r.succeeded, r.failed), (2, 0));
    let works = store.works("r").await.unwrap();
    assert!(works.iter().all(|w| w.state == WorkState::Succeeded));
}

#[tokio::test]
async fn a_rollout_whose_finisher_died_is_joined_to_be_ended() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(&dir, [WorkState::Succeeded, WorkState::Succeeded]).await;
    // Every tenant done, nobody ending it: the last runner died first. Joinable.
    assert_eq!(joinable(&store, 60_000).await, ["r"]);
    // Replica a takes the ending, alive: not joinable while it is seen.
    store.heartbeat("a", 60_000).await.unwrap();
    assert!(store.claim_finish("r", "a", 60_000).await.unwrap());
    assert!(joinable(&store, 60_000).await.is_empty());
    // a not seen within a lease (of -1 s: every sighting is too old): it died ending it.
    // Joinable, and another replica takes the end.
    assert_eq!(joinable(&store, -1_000).await, ["r"]);
    assert!(store.claim_finish("r", "b", -1_000).await.unwrap());
}

#[tokio::test]
async fn a_rollout_a_live_replica_runs_is_not_joined_without_work_to_claim() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(&dir, [WorkState::Succeeded, WorkState::Pending]).await;
    // A pending tenant: joinable, as before.
    assert_eq!(joinable(&store, 60_000).await, ["r"]);
    // Claimed by a live replica under a lease: nothing to join.
    let claimed = store.claim("r", 0, "a", 60_000, 8, None).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(joinable(&store, 60_000).await.is_empty());
}

#[tokio::test]
async fn failed_versions_keep_a_repeatable_whose_description_holds_a_comma() {
    use super::known::KnownState;
    use crate::model::Version;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/control.db?mode=rwc", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let state = |tenant: &str, failed: &[&str]| KnownState {
        fleet: "f".into(),
        tenant: tenant.into(),
        applied: Some(crate::model::Applied {
            versions: [Version::from(1), Version::from(2)].into(),
            repeatables: [(
                crate::model::MigrationKey::repeatable("views").unwrap(),
                "sum".to_owned(),
            )]
            .into(),
        }),
        current_version: Some(Version::from(2)),
        failed_versions: failed.iter().map(|v| v.parse().unwrap()).collect(),
        blocked: tenant == "t1",
        error: None,
        read_at: now_ms(),
    };
    let written = [
        state("t0", &["1.2", "R__grants,roles"]),
        state("t1", &["3", "R__views"]),
        state("t2", &[]),
    ];
    store.put_known(&written).await.unwrap();
    let mut read = store.known_states("f").await.unwrap();
    read.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    assert_eq!(read, written);
    // Alike states are one group: t0 and t1 differ by their failed versions.
    let groups = store.known_groups("f").await.unwrap();
    assert_eq!(groups.len(), 3, "{groups:?}");
    assert_eq!(groups.iter().map(|g| g.count).sum::<u32>(), 3);
    let blocked = groups.iter().filter(|g| g.state.blocked).count();
    assert_eq!(blocked, 1, "{groups:?}");
}

/// Issue 25, finding 12: rollouts finished before the cutoff go with their work items,
/// events and audit entries, as do older audit entries whose rollout is gone; a rollout
/// still running however old, and one finished after the cutoff, stay whole.
#[tokio::test]
async fn finished_rollouts_past_retention_are_purged_and_the_rest_stay() {
    let dir = tempfile::tempdir().unwrap();
    // "r": created by `store_with`, running.
    let store = store_with(&dir, [WorkState::Pending, WorkState::Pending]).await;
    let day = 86_400_000;
    let now = now_ms();
    let spec = RolloutSpec {
        accept_data_loss: false,
        require_expected_schema: false,
        fleet: "f".into(),
        op: RolloutOp::Apply(ApplyOptions::default()),
        strategy: Strategy::default(),
        transaction: TransactionMode::default(),
        dry_run: true,
        set_digest: SetDigest::default(),
    };
    let works = [TenantWork {
        tenant: "t0".into(),
        position: 0,
        wave: 0,
        state: WorkState::Succeeded,
        attempts: 1,
        last_error: None,
    }];
    // (id, state, finished_at): two old finished, one recent.
    for (id, state, finished) in [
        ("old-ok", "succeeded", now - 100 * day),
        ("old-failed", "failed", now - 91 * day),
        ("recent", "succeeded", now - 10 * day),
    ] {
        let new = NewRollout {
            id,
            spec: &spec,
            request_json: "{}",
            created_by: "test",
            method: "Apply",
            waves: 1,
            works: &works,
        };
        store.create_rollout(&new).await.unwrap();
        sqlx::query(
            "UPDATE rollouts SET state = $1, created_at = $2, finished_at = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(finished - 1000)
        .bind(finished)
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO rollout_events (rollout_id, seq, at, body) VALUES ($1, 1, $2, '{}')",
        )
        .bind(id)
        .bind(finished)
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query("UPDATE audit SET at = $1 WHERE rollout_id = $2")
            .bind(finished - 1000)
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
    }
    // The running rollout is old too, and an old audit entry lost its rollout.
    for sql in [
        format!(
            "UPDATE rollouts SET created_at = {} WHERE id = 'r'",
            now - 200 * day
        ),
        format!(
            "UPDATE audit SET at = {} WHERE rollout_id = 'r'",
            now - 200 * day
        ),
        format!(
            "INSERT INTO audit (rollout_id, at, method, caller, detail) \
             VALUES ('gone', {}, 'Apply', 'test', '')",
            now - 120 * day
        ),
    ] {
        sqlx::query(&sql).execute(&store.pool).await.unwrap();
    }
    let purged = store.purge_finished_before(now - 90 * day).await.unwrap();
    assert_eq!(purged.rollouts, 2, "{purged:?}");
    assert_eq!(purged.audit, 3, "{purged:?}");
    let count = |sql: &'static str| {
        let pool = store.pool.clone();
        async move {
            let row = sqlx::query(sql).fetch_one(&pool).await.unwrap();
            sqlx::Row::get::<i64, _>(&row, 0)
        }
    };
    let kept = |table: &'static str| {
        let pool = store.pool.clone();
        async move {
            let column = if table == "rollouts" {
                "id"
            } else {
                "rollout_id"
            };
            let sql = format!("SELECT DISTINCT {column} FROM {table} ORDER BY {column}");
            let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap();
            rows.iter()
                .map(|r| sqlx::Row::get::<String, _>(r, 0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(kept("rollouts").await, ["r", "recent"]);
    assert_eq!(kept("rollout_tenants").await, ["r", "recent"]);
    assert_eq!(kept("rollout_events").await, ["r", "recent"]);
    assert_eq!(kept("audit").await, ["r", "recent"]);
    assert_eq!(
        count("SELECT COUNT(*) FROM rollout_tenants WHERE rollout_id = 'r'").await,
        2
    );
    // A second purge finds nothing.
    let again = store.purge_finished_before(now - 90 * day).await.unwrap();
    assert_eq!(again, super::retention::Purged::default());
}

#[tokio::test]
async fn the_first_expected_schema_of_a_version_stays_and_census_rows_are_replaced() {
    use super::{CensusRow, ExpectedSchema};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/control.db?mode=rwc", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let expected = |tenant: &str, fingerprint: &str| ExpectedSchema {
        version: "3".into(),
        fingerprint: fingerprint.into(),
        model: "{}".into(),
        tenant: tenant.into(),
        at_ms: now_ms(),
    };
    let first = store
        .record_expected("f", "d", &expected("t0", "aa"))
        .await
        .unwrap();
    assert_eq!(
        (first.tenant.as_str(), first.fingerprint.as_str()),
        ("t0", "aa")
    );
    // A later tenant with another schema does not replace it: it is told the first's.
    let later = store
        .record_expected("f", "d", &expected("t1", "bb"))
        .await
        .unwrap();
    assert_eq!(
        (later.tenant.as_str(), later.fingerprint.as_str()),
        ("t0", "aa")
    );
    // Another set's digest, another fleet: their own.
    let other = store
        .record_expected("f", "e", &expected("t1", "bb"))
        .await
        .unwrap();
    assert_eq!(other.fingerprint, "bb");
    assert_eq!(store.expected_schemas("f", "d").await.unwrap().len(), 1);
    assert!(store.expected_schemas("g", "d").await.unwrap().is_empty());

    let row = |fingerprint: &str, drifted: bool| CensusRow {
        tenant: "t0".into(),
        version: "3".into(),
        fingerprint: fingerprint.into(),
        drifted,
        history: "h".into(),
        at_ms: 1,
    };
    store.put_census("f", &[row("aa", false)]).await.unwrap();
    store.put_census("f", &[row("bb", true)]).await.unwrap();
    assert_eq!(store.census_rows("f").await.unwrap(), [row("bb", true)]);
}

/// A batch numbers each rollout's events in batch order after the ones stored, counts each
/// ended work item once and adds the tenants' migrations to the rollout, whether the
/// events came alone or with their work item.
#[tokio::test]
async fn a_batch_numbers_events_in_order_and_counts_tenants_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(&dir, [WorkState::Pending, WorkState::Pending]).await;
    let before = store.rollout("r").await.unwrap().unwrap().last_seq;
    let claims = store.claim("r", 0, "a", 60_000, 8, None).await.unwrap();
    let event = |kind: EventKind| crate::model::RolloutEvent {
        rollout_id: "r".into(),
        seq: 0,
        at_unix_ms: now_ms(),
        kind,
    };
    let started = |t: &str| event(EventKind::TenantStarted { tenant: t.into() });
    let finished = |t: &str, outcome, migrations_run| {
        event(EventKind::TenantFinished(crate::model::TenantFinished {
            tenant: t.into(),
            outcome,
            migrations_run,
            duration_ms: 1,
            current_version: None,
            error: None,
            plan: None,
        }))
    };
    let work = |i: usize, state, e| Write::Work {
        rollout_id: "r".into(),
        position: claims[i].position,
        lease: Some(claims[i].lease.clone()),
        state,
        error: None,
        event: Some(e),
    };
    use crate::model::TenantOutcome::{Failed, Succeeded};
    let newest = store
        .write(&[
            Write::Event(started("t0")),
            Write::Event(started("t1")),
            work(0, WorkState::Succeeded, finished("t0", Succeeded, 3)),
            work(1, WorkState::Failed, finished("t1", Failed, 1)),
            // Late twice: refused, neither counted nor stored.
            work(0, WorkState::Succeeded, finished("t0", Succeeded, 3)),
        ])
        .await
        .unwrap();
    assert_eq!(newest, [("r".to_owned(), before + 4)]);
    let r = store.rollout("r").await.unwrap().unwrap();
    assert_eq!((r.succeeded, r.failed, r.migrations_run), (1, 1, 4));
    let events = store.events_after("r", before, 100).await.unwrap();
    let seen: Vec<(u64, String)> = events
        .iter()
        .map(|e| {
            let what = match &e.kind {
                EventKind::TenantStarted { tenant } => format!("started {tenant}"),
                EventKind::TenantFinished(t) => format!("finished {}", t.tenant),
                other => format!("{other:?}"),
            };
            (e.seq, what)
        })
        .collect();
    let expected: Vec<(u64, String)> = ["started t0", "started t1", "finished t0", "finished t1"]
        .iter()
        .enumerate()
        .map(|(i, w)| (before + 1 + i as u64, (*w).to_owned()))
        .collect();
    assert_eq!(seen, expected);
}
