//! [`MigrationSet`]: the migrations one fleet follows, in its tool's order, with Flyway's
//! baseline migrations beside them.

use std::{borrow::Cow, cmp::Ordering, collections::BTreeMap, sync::Arc};

use sha2::{Digest, Sha256};

use super::{DuplicateVersion, HistoryRecord, Keyed, Migration, MigrationKey, SetDigest, Version};

/// How a set's tool orders its versions, and so in which order Avocet runs them, which
/// version is current, which are below a target and which are out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionOrder {
    /// [`Version`]'s own order: numerically, part by part (sqlx, golang-migrate, dbmate,
    /// Flyway, refinery).
    #[default]
    Numeric,
    /// By the version's text, byte by byte, as diesel orders them: its `MigrationVersion`
    /// is a string that derives `Ord` (diesel_migrations, `migration_harness.rs`,
    /// `pending_migrations`), so `2025-12-29-110242-0000` (`202512291102420000`) runs
    /// before `2026-01-20-162913` (`20260120162913`), where numbers would run every
    /// 18-digit version after every 14-digit one.
    Text,
}

/// The ordered, immutable list of migrations one fleet follows.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    /// In the tool's order ([`VersionOrder`]), repeatables last, no duplicate version.
    migrations: Vec<Arc<Migration>>,
    /// `Text` order: each migration's version as its tool writes it (diesel's directory
    /// prefix without dashes, leading zeros kept), parallel to `migrations`.
    keys: Vec<String>,
    /// `Text` order: positions in `migrations`, sorted by version, for [`Self::get`].
    by_version: Vec<usize>,
    order: VersionOrder,
    /// Flyway's baseline migrations (`B<version>__<description>.sql`), ascending: run
    /// instead of every versioned migration at or below their version on a tenant with no
    /// history (see `plan::pending`). Not in [`Self::iter`].
    baselines: Vec<Arc<Migration>>,
    digest: SetDigest,
    /// What loading it noticed without refusing it, e.g. files that look like migrations
    /// but are not read.
    warnings: Vec<String>,
    /// The on-disk layout it was read from (never `Auto` once loaded from a directory).
    format: super::SetFormat,
}

/// The lines of a set's digest: per migration its version, name and the checksums of its
/// `up` and `down` scripts; then each baseline migration, marked so.
fn digest(migrations: &[Arc<Migration>], baselines: &[Arc<Migration>]) -> SetDigest {
    let mut hash = Sha256::new();
    for m in migrations {
        let down = m.down.as_ref().map_or("-", |d| d.checksum.as_str());
        // `\tunordered` only when set, so every other set keeps its digest.
        let unordered = if m.unordered { "\tunordered" } else { "" };
        hash.update(format!(
            "{}\t{}\t{}\t{down}{unordered}\n",
            m.version, m.name, m.up.checksum
        ));
    }
    // Only sets that have baselines gain these lines: every other set keeps its digest.
    for b in baselines {
        hash.update(format!(
            "{}\t{}\t{}\tbaseline\n",
            b.version, b.name, b.up.checksum
        ));
    }
    SetDigest(hex::encode(hash.finalize()))
}

/// The first version `sorted` (by version) holds twice.
fn duplicate(sorted: &[Migration]) -> Option<DuplicateVersion> {
    sorted
        .windows(2)
        .find(|w| w[0].version == w[1].version)
        .map(|w| DuplicateVersion {
            version: w[0].version.clone(),
            first: w[0].name.clone(),
            second: w[1].name.clone(),
        })
}

impl MigrationSet {
    /// Builds a set from migrations in any order and computes its [`SetDigest`]. Its order
    /// is [`VersionOrder::Numeric`] until [`Self::with_text_order`].
    ///
    /// # Errors
    /// [`DuplicateVersion`] when two migrations share a version.
    pub fn new(mut migrations: Vec<Migration>) -> Result<Self, DuplicateVersion> {
        migrations.sort_by(|a, b| a.version.cmp(&b.version));
        if let Some(d) = duplicate(&migrations) {
            return Err(d);
        }
        let migrations: Vec<Arc<Migration>> = migrations.into_iter().map(Arc::new).collect();
        Ok(Self {
            digest: digest(&migrations, &[]),
            migrations,
            ..Self::default()
        })
    }

    /// The same set in [`VersionOrder::Text`]: ordered by `keys`, each version's text as
    /// its tool writes it (a version without a key is read as [`Version`] displays it;
    /// repeatables stay after every numbered version). The digest does not change: it is
    /// the set's content, not its order.
    pub fn with_text_order(mut self, keys: &BTreeMap<Version, String>) -> Self {
        let key = |m: &Migration| {
            m.version
                .version()
                .and_then(|v| keys.get(&v).cloned())
                .unwrap_or_else(|| m.version.to_string())
        };
        let mut keyed: Vec<(String, Arc<Migration>)> =
            self.migrations.drain(..).map(|m| (key(&m), m)).collect();
        keyed.sort_by(|(ka, a), (kb, b)| {
            (a.version.is_repeatable(), ka, &a.version).cmp(&(
                b.version.is_repeatable(),
                kb,
                &b.version,
            ))
        });
        (self.keys, self.migrations) = keyed.into_iter().unzip();
        let mut by_version: Vec<usize> = (0..self.migrations.len()).collect();
        by_version.sort_by(|&i, &j| self.migrations[i].version.cmp(&self.migrations[j].version));
        self.by_version = by_version;
        self.order = VersionOrder::Text;
        self
    }

    /// The same set with Flyway's baseline migrations `baselines` (their digest lines
    /// added).
    ///
    /// # Errors
    /// [`DuplicateVersion`] when two baselines share a version.
    pub fn with_baselines(
        mut self,
        mut baselines: Vec<Migration>,
    ) -> Result<Self, DuplicateVersion> {
        baselines.sort_by(|a, b| a.version.cmp(&b.version));
        if let Some(d) = duplicate(&baselines) {
            return Err(d);
        }
        self.baselines = baselines.into_iter().map(Arc::new).collect();
        self.digest = digest(&self.migrations, &self.baselines);
        Ok(self)
    }

    /// The same set with every script's findings judged by `policy` (a fleet's `[lint]`):
    /// `off` codes removed, `blocks` as the policy says, and each script's `destructive`
    /// from them. The digest does not change: the files are the same.
    pub fn with_lint(mut self, policy: &super::LintPolicy) -> Self {
        if policy.0.is_empty() {
            return self;
        }
        let judge = |s: &mut super::Script| {
            s.findings = policy.apply(&s.findings);
            s.destructive = s.findings.iter().any(|f| f.blocks);
        };
        for m in &mut self.migrations {
            let mut judged = (**m).clone();
            judge(&mut judged.up);
            if let Some(down) = &mut judged.down {
                judge(down);
            }
            *m = Arc::new(judged);
        }
        self
    }

    /// The same set with `warnings` from its loading (they do not change its digest).
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// The same set, read from a directory laid out as `format`.
    pub fn with_format(mut self, format: super::SetFormat) -> Self {
        self.format = format;
        self
    }

    /// The layout the set was read from; `Auto` for a set built in memory.
    pub fn format(&self) -> super::SetFormat {
        self.format
    }

    /// How the set's tool orders its versions.
    pub fn order(&self) -> VersionOrder {
        self.order
    }

    /// What loading the set noticed without refusing it, one sentence each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Its versioned and repeatable migrations in the tool's order ([`Self::compare`]);
    /// baseline migrations are in [`Self::baselines`].
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Migration>> {
        self.migrations.iter()
    }

    /// Flyway's baseline migrations, ascending.
    pub fn baselines(&self) -> impl DoubleEndedIterator<Item = &Arc<Migration>> {
        self.baselines.iter()
    }

    /// The position in [`Self::iter`] of the migration with key `version`.
    fn position(&self, version: &MigrationKey) -> Option<usize> {
        match self.order {
            VersionOrder::Numeric => self
                .migrations
                .binary_search_by(|m| m.version.cmp(version))
                .ok(),
            VersionOrder::Text => self
                .by_version
                .binary_search_by(|&i| self.migrations[i].version.cmp(version))
                .ok()
                .map(|i| self.by_version[i]),
        }
    }

    /// The migration with key `version` (a [`MigrationKey`], a [`Version`] or an `i64`),
    /// if the set has it: the versioned one, else a baseline migration of that version.
    pub fn get(&self, version: impl Into<MigrationKey>) -> Option<&Arc<Migration>> {
        let key = version.into();
        self.position(&key)
            .map(|i| &self.migrations[i])
            .or_else(|| key.version().and_then(|v| self.baseline(&v)))
    }

    /// The baseline migration with `version`, if the set has one.
    pub fn baseline(&self, version: &Version) -> Option<&Arc<Migration>> {
        self.baselines
            .binary_search_by(|m| m.version.cmp(&version.key()))
            .ok()
            .map(|i| &self.baselines[i])
    }

    /// The baseline migration with key `key`, if the set has one (a repeatable's: none).
    fn baseline_of(&self, key: &MigrationKey) -> Option<&Arc<Migration>> {
        key.version().and_then(|v| self.baseline(&v))
    }

    /// The migration whose script `record` says ran: the baseline migration of its version
    /// when the set has one and the record holds its checksum (or the set has no versioned
    /// migration of that version), else [`Self::get`].
    pub fn for_record(&self, record: &HistoryRecord) -> Option<&Arc<Migration>> {
        let versioned = self.position(&record.version).map(|i| &self.migrations[i]);
        match self.baseline_of(&record.version) {
            Some(b) if versioned.is_none() || b.up.checksum == record.checksum => Some(b),
            _ => versioned,
        }
    }

    /// True when `record` ran one of the set's baseline migrations ([`Self::for_record`]).
    pub fn ran_baseline(&self, record: &HistoryRecord) -> bool {
        match (self.for_record(record), self.baseline_of(&record.version)) {
            (Some(m), Some(b)) => Arc::ptr_eq(m, b),
            _ => false,
        }
    }

    /// `a` against `b` (migration keys or versions, [`Keyed`]) in the set's order
    /// ([`VersionOrder`]): versions the set has by their text as the tool wrote it, others
    /// by their [`Version`] text; repeatables after every numbered version. Equal only
    /// when `a == b`.
    pub fn compare(&self, a: &impl Keyed, b: &impl Keyed) -> Ordering {
        let (a, b) = (a.key(), b.key());
        match self.order {
            VersionOrder::Numeric => a.cmp(&b),
            VersionOrder::Text if a == b => Ordering::Equal,
            VersionOrder::Text => (a.is_repeatable(), self.text(&a))
                .cmp(&(b.is_repeatable(), self.text(&b)))
                .then_with(|| a.cmp(&b)),
        }
    }

    /// `key`'s text for [`VersionOrder::Text`].
    fn text(&self, key: &MigrationKey) -> Cow<'_, str> {
        match self.position(key).and_then(|i| self.keys.get(i)) {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(key.to_string()),
        }
    }

    /// The newest of `versions` (migration keys or versions) in the set's order
    /// ([`Self::compare`]).
    pub fn newest<K: Keyed>(&self, versions: impl IntoIterator<Item = K>) -> Option<K> {
        versions.into_iter().max_by(|a, b| self.compare(a, b))
    }

    /// The newest numbered version, a baseline migration's included (repeatables have
    /// none), or `None` when the set has no versioned migration.
    pub fn latest(&self) -> Option<Version> {
        let versioned = self
            .migrations
            .iter()
            .rev()
            .find_map(|m| m.version.version());
        let baseline = self.baselines.last().and_then(|b| b.version.version());
        self.newest(versioned.into_iter().chain(baseline))
    }

    /// Number of migrations, baselines included.
    pub fn len(&self) -> usize {
        self.migrations.len() + self.baselines.len()
    }

    /// True when the set has no migrations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set's content digest.
    pub fn digest(&self) -> &SetDigest {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Script;

    fn script(sql: &str) -> Script {
        Script {
            sql: sql.into(),
            checksum: format!("sum:{sql}"),
            ..Script::default()
        }
    }

    fn migration(version: i64, name: &str, down: Option<&str>) -> Migration {
        Migration {
            version: version.into(),
            name: name.into(),
            up: script(name),
            down: down.map(script),
            unordered: false,
        }
    }

    #[test]
    fn the_digest_follows_content_not_input_order() {
        let a = MigrationSet::new(vec![migration(2, "b", None), migration(1, "a", None)]);
        let b = MigrationSet::new(vec![migration(1, "a", None), migration(2, "b", None)]);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().0.len(), 64);
        let with_down =
            MigrationSet::new(vec![migration(1, "a", Some("x")), migration(2, "b", None)]);
        assert_ne!(with_down.unwrap().digest(), a.digest());
        let renamed = MigrationSet::new(vec![migration(1, "a", None), migration(2, "c", None)]);
        assert_ne!(renamed.unwrap().digest(), a.digest());
        let based = b.clone().with_baselines(vec![migration(2, "base", None)]);
        assert_ne!(based.unwrap().digest(), a.digest());
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let err = MigrationSet::new(vec![migration(1, "a", None), migration(1, "b", None)]);
        assert_eq!(err.unwrap_err().version, 1);
        let set = MigrationSet::new(vec![migration(1, "a", None)]).unwrap();
        let err = set.with_baselines(vec![migration(3, "b", None), migration(3, "c", None)]);
        assert_eq!(err.unwrap_err().version, 3);
    }

    /// diesel's versions: the initial setup, 14-digit ones and 18-digit ones with `-0000`.
    fn diesel() -> MigrationSet {
        let texts = [
            "00000000000000",
            "20251119101010",
            "202511191234560000",
            "202512291102420000",
            "20260120162913",
        ];
        let keys: BTreeMap<Version, String> = texts
            .iter()
            .map(|t| (t.parse().unwrap(), (*t).to_owned()))
            .collect();
        let migrations = keys
            .keys()
            .map(|v| migration(v.as_i64().unwrap(), "m", None));
        MigrationSet::new(migrations.collect())
            .unwrap()
            .with_text_order(&keys)
    }

    #[test]
    fn text_order_is_diesels_string_order() {
        let set = diesel();
        let order: Vec<String> = set.iter().map(|m| m.version.to_string()).collect();
        assert_eq!(
            order,
            [
                "0",
                "20251119101010",
                "202511191234560000",
                "202512291102420000",
                "20260120162913"
            ]
        );
        let v = |n: i64| Version::from(n);
        let k = |n: i64| MigrationKey::from(n);
        assert_eq!(set.latest(), Some(v(20260120162913)));
        assert_eq!(
            set.compare(&v(202512291102420000), &v(20260120162913)),
            Ordering::Less
        );
        assert_eq!(set.compare(&v(0), &v(0)), Ordering::Equal);
        // A version the set lacks orders by its text among the set's.
        assert_eq!(set.compare(&v(2026), &v(20251119101010)), Ordering::Greater);
        assert_eq!(
            set.newest([v(202512291102420000), v(20251119101010)]),
            Some(v(202512291102420000))
        );
        assert_eq!(
            set.get(202511191234560000).unwrap().version,
            k(202511191234560000)
        );
        assert!(set.get(1).is_none());
        let numeric = MigrationSet::new(set.iter().map(|m| (**m).clone()).collect()).unwrap();
        assert_eq!(numeric.latest(), Some(v(202512291102420000)));
        assert_eq!(numeric.digest(), set.digest());
    }

    #[test]
    fn a_baseline_is_found_by_version_and_by_the_record_that_ran_it() {
        let set = MigrationSet::new(vec![migration(1, "v1", None), migration(3, "v3", None)])
            .unwrap()
            .with_baselines(vec![migration(3, "b3", None), migration(5, "b5", None)])
            .unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(set.iter().count(), 2);
        assert_eq!(set.latest(), Some(5.into()));
        assert_eq!(set.get(3).unwrap().name, "v3");
        assert_eq!(set.get(5).unwrap().name, "b5");
        let record = |version: i64, checksum: &str| HistoryRecord {
            version: version.into(),
            name: String::new(),
            checksum: checksum.into(),
            down_checksum: None,
            status: crate::model::RecordStatus::Applied,
            batch: 1,
            statements_done: 0,
            statements_total: 0,
            error: None,
            direction: crate::model::Direction::Up,
            no_transaction: None,
        };
        assert_eq!(set.for_record(&record(3, "sum:b3")).unwrap().name, "b3");
        assert_eq!(set.for_record(&record(3, "sum:v3")).unwrap().name, "v3");
        assert_eq!(set.for_record(&record(5, "edited")).unwrap().name, "b5");
    }
}
