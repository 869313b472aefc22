//! The history SQL shared by tenants of one key: built once per (dialect, schema or
//! database, history table, version column) and held only as long as a tenant holds it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError, Weak},
};

use super::history::{HistorySql, VersionColumn};
use crate::model::DialectKind;

/// A key: dialect, schema or database, history table, version column.
type Key = (DialectKind, String, String, VersionColumn);

/// The shared entries, and how many the last sweep left.
struct Shared {
    map: BTreeMap<Key, Weak<HistorySql>>,
    swept: usize,
}

/// Every key's entry, held weakly.
static SHARED: Mutex<Shared> = Mutex::new(Shared {
    map: BTreeMap::new(),
    swept: 0,
});

/// The history SQL for `key` (dialect, schema or database, history table, version column),
/// built by `build` once and shared by every tenant whose key is the same while any of them
/// holds it: a fleet of 100,000 tenants in the `public` schema keeps one copy, not 100,000.
///
/// Entries no tenant holds any more are swept when the map has doubled since the last
/// sweep, so a fleet of 2,000 schema tenants (2,000 keys) costs O(n) sweeping in all, not a
/// sweep of the whole map per new key (O(n²)).
pub(super) fn shared(
    key: (DialectKind, &str, &str, VersionColumn),
    build: impl FnOnce() -> HistorySql,
) -> Arc<HistorySql> {
    let (kind, schema, table, column) = key;
    let key = (kind, schema.to_owned(), table.to_owned(), column);
    // A poisoned map only means another thread panicked mid-insert; its entries are intact.
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sql) = shared.map.get(&key).and_then(Weak::upgrade) {
        return sql;
    }
    if shared.map.len() >= 2 * shared.swept.max(32) {
        shared.map.retain(|_, w| w.strong_count() > 0);
        shared.swept = shared.map.len();
    }
    let sql = Arc::new(build());
    shared.map.insert(key, Arc::downgrade(&sql));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::postgres::Pg;

    fn build(schema: &str) -> HistorySql {
        HistorySql::new::<Pg>(
            Some(schema),
            "avocet_migrations",
            true,
            VersionColumn::Integer,
        )
    }

    fn key(schema: &str) -> (DialectKind, &str, &str, VersionColumn) {
        (
            DialectKind::Postgres,
            schema,
            "avocet_migrations",
            VersionColumn::Integer,
        )
    }

    /// Tenants of one key share one copy; a key no tenant holds is built again.
    #[test]
    fn one_copy_per_key_while_held() {
        let schema = "shared_test_one_copy";
        let a = shared(key(schema), || build(schema));
        let b = shared(key(schema), || panic!("built twice while held"));
        assert!(Arc::ptr_eq(&a, &b));
        let other = shared(key("shared_test_other"), || build("shared_test_other"));
        assert!(!Arc::ptr_eq(&a, &other));
        drop((a, b));
        let mut built = false;
        let _again = shared(key(schema), || {
            built = true;
            build(schema)
        });
        assert!(built, "a key nobody held was not built again");
    }

    /// Thousands of keys made and dropped one after another (schema tenants read in turn)
    /// leave the map bounded: the entries nobody holds are swept.
    #[test]
    fn dropped_keys_are_swept() {
        for i in 0..5_000 {
            let schema = format!("shared_test_sweep_{i}");
            drop(shared(key(&schema), || build(&schema)));
        }
        let held = SHARED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len();
        assert!(held < 5_000, "{held} entries kept for 5,000 dropped keys");
    }
}
