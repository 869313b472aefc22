//! [`MigrationKey`]: what names a migration in a set, a history table, an event and a plan —
//! a numbered [`Version`], or a Flyway repeatable migration's description.
//!
//! A repeatable (`R__<description>.sql`) has no version. Its key in the history table and
//! in events is `R__<description>` (on the wire, a `Version` message whose `repeatable` is
//! the description), and it orders after every numbered key, repeatables among themselves
//! by description: the order Flyway runs them in ("repeatable migrations are always applied
//! last, after all pending versioned migrations … in the order of their description",
//! Flyway docs, "Migrations"), the description read as Flyway reads it from the file name,
//! underscores as spaces (`R__Customer_view` runs before `R__CustomerAudit`).

use std::{borrow::Cow, cmp::Ordering, fmt, str::FromStr, sync::Arc};

use super::{Version, VersionError};

/// How a repeatable migration's key starts: `R__views` is the repeatable `views`.
pub const REPEATABLE_PREFIX: &str = "R__";

/// Longest repeatable key in bytes, prefix included: what MySQL's `VARCHAR(128)` history
/// column holds.
pub const MAX_REPEATABLE_KEY_BYTES: usize = 128;

/// The key of one migration: a numbered version, or a repeatable's description.
///
/// The description is an `Arc<str>`: a clone allocates nothing, and the description is
/// freed with its last holder, so no process-wide table grows with what requests or history
/// tables name. Build a repeatable's key with [`MigrationKey::repeatable`] (or `FromStr`),
/// which checks the description.
///
/// Equality and hash: a numbered key as its [`Version`] (`1`, `1.0` are one key), a
/// repeatable by its description as written. Order: numbered keys by [`Version`], then
/// repeatables by Flyway's description (underscores as spaces; byte order, where Flyway
/// compares UTF-16 units, which differs only between astral and U+E000–U+FFFF characters),
/// then as written. [`fmt::Display`] writes a version as [`Version`] does and a repeatable
/// as `R__<description>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum MigrationKey {
    /// A numbered migration's version.
    Versioned(Version),
    /// A repeatable migration's description (`views` for `R__views`).
    Repeatable(Arc<str>),
}

/// A repeatable's description as Flyway reads it from the file name (`R__Create_views.sql`
/// is `Create views`): underscores as spaces. Flyway orders repeatables by it, keys their
/// history rows by it, and refuses two files with one.
pub(crate) fn flyway_description(name: &str) -> String {
    name.replace('_', " ")
}

impl MigrationKey {
    /// The key of the repeatable migration described `name` (`R__<name>`), as read from a
    /// migration set, a history table or a request.
    ///
    /// # Errors
    /// [`VersionError`] when `name` is empty, has a control character, starts or ends with
    /// whitespace (MySQL's `PAD SPACE` collations compare `views ` equal to `views`), or
    /// makes a key longer than [`MAX_REPEATABLE_KEY_BYTES`].
    pub fn repeatable(name: &str) -> Result<Self, VersionError> {
        let refuse = |reason| VersionError {
            text: format!("{REPEATABLE_PREFIX}{name}"),
            reason,
        };
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(refuse(
                "a repeatable needs a description without control characters",
            ));
        }
        if name.trim() != name {
            return Err(refuse(
                "a repeatable's description neither starts nor ends with whitespace",
            ));
        }
        if REPEATABLE_PREFIX.len() + name.len() > MAX_REPEATABLE_KEY_BYTES {
            return Err(refuse("a repeatable's key is at most 128 bytes"));
        }
        Ok(Self::Repeatable(Arc::from(name)))
    }

    /// The numbered version; `None` for a repeatable.
    pub fn version(&self) -> Option<Version> {
        match self {
            Self::Versioned(v) => Some(*v),
            Self::Repeatable(_) => None,
        }
    }

    /// A repeatable migration's description (`views` for `R__views`); `None` for a
    /// numbered version.
    pub fn repeatable_name(&self) -> Option<&str> {
        match self {
            Self::Versioned(_) => None,
            Self::Repeatable(name) => Some(name),
        }
    }

    /// True for a repeatable migration's key: it has no place among numbered versions
    /// (never the current version, never rolled back, never below a target).
    pub fn is_repeatable(&self) -> bool {
        matches!(self, Self::Repeatable(_))
    }

    /// The version as an integer, when it is one (`None` for a dotted version and a
    /// repeatable).
    pub fn as_i64(&self) -> Option<i64> {
        self.version().and_then(|v| v.as_i64())
    }
}

/// What a set's order ([`MigrationSet::compare`](super::MigrationSet::compare)) places: a
/// migration's key, or a numbered [`Version`] (a target, a current version), which is the
/// key of the versioned migration it names.
pub trait Keyed {
    /// As a migration's key (borrowed when it is one; a version's costs no allocation).
    fn key(&self) -> Cow<'_, MigrationKey>;
}

impl Keyed for MigrationKey {
    fn key(&self) -> Cow<'_, MigrationKey> {
        Cow::Borrowed(self)
    }
}

impl Keyed for Version {
    fn key(&self) -> Cow<'_, MigrationKey> {
        Cow::Owned(MigrationKey::Versioned(*self))
    }
}

impl From<Version> for MigrationKey {
    fn from(v: Version) -> Self {
        Self::Versioned(v)
    }
}

impl From<i64> for MigrationKey {
    fn from(n: i64) -> Self {
        Self::Versioned(Version::integer(n))
    }
}

impl PartialEq<Version> for MigrationKey {
    fn eq(&self, other: &Version) -> bool {
        matches!(self, Self::Versioned(v) if v == other)
    }
}

impl PartialEq<i64> for MigrationKey {
    fn eq(&self, other: &i64) -> bool {
        *self == Version::integer(*other)
    }
}

impl Ord for MigrationKey {
    /// Numbered versions part by part, then repeatables by Flyway's description
    /// (underscores as spaces), then as written.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Versioned(a), Self::Versioned(b)) => a.cmp(b),
            (Self::Versioned(_), Self::Repeatable(_)) => Ordering::Less,
            (Self::Repeatable(_), Self::Versioned(_)) => Ordering::Greater,
            (Self::Repeatable(a), Self::Repeatable(b)) => flyway_description(a)
                .cmp(&flyway_description(b))
                .then_with(|| a.cmp(b)),
        }
    }
}

impl PartialOrd for MigrationKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for MigrationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Versioned(v) => fmt::Display::fmt(v, f),
            Self::Repeatable(name) => write!(f, "{REPEATABLE_PREFIX}{name}"),
        }
    }
}

impl fmt::Debug for MigrationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MigrationKey {
    type Err = VersionError;

    /// Parses a repeatable's key (`R__views`, see [`MigrationKey::repeatable`]) or a
    /// [`Version`] (`3`, `1.2.3`).
    ///
    /// # Errors
    /// [`VersionError`] for a repeatable key [`MigrationKey::repeatable`] refuses, or a
    /// text [`Version`]'s `FromStr` refuses.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix(REPEATABLE_PREFIX) {
            Some(name) => Self::repeatable(name),
            None => text.parse().map(Self::Versioned),
        }
    }
}

impl serde::Serialize for MigrationKey {
    /// A numbered key as its [`Version`] (an integer as a number), a repeatable as
    /// `"R__<description>"`: what a `Version` serialized before keys were their own type.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Versioned(v) => v.serialize(s),
            Self::Repeatable(_) => s.collect_str(self),
        }
    }
}

impl<'de> serde::Deserialize<'de> for MigrationKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::version::stored(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> MigrationKey {
        s.parse().unwrap()
    }

    #[test]
    fn repeatables_order_after_every_version_by_description() {
        let mut keys = [
            k("R__views"),
            k("20240313170000"),
            k("R__functions"),
            k("1.2"),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1.2", "20240313170000", "R__functions", "R__views"]);
        let views = k("R__views");
        assert_eq!(views, MigrationKey::repeatable("views").unwrap());
        assert_eq!(views.repeatable_name(), Some("views"));
        assert!(views.is_repeatable() && !k("1.2").is_repeatable());
        assert_eq!(views.version(), None);
        assert_eq!(k("1.2").version(), Some("1.2".parse().unwrap()));
        assert_eq!(views.as_i64(), None);
        assert_eq!(k("1.0"), k("1"));
        assert_eq!(k("3"), 3);
        assert_ne!(views, MigrationKey::from(0));
        let json = serde_json::to_string(&[views.clone(), k("3"), k("1.2.3")]).unwrap();
        assert_eq!(json, r#"["R__views",3,"1.2.3"]"#);
        let back: Vec<MigrationKey> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [views, k("3"), k("1.2.3")]);
    }

    #[test]
    fn repeatables_order_by_description_as_flyway_reads_it() {
        // Flyway's description of R__Customer_view.sql is "Customer view": the space sorts
        // before "A", where the file name's underscore would sort after it.
        let mut keys = [k("R__CustomerAudit"), k("R__Customer_view"), k("R__a b")];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["R__Customer_view", "R__CustomerAudit", "R__a b"]);
        // Written differently, one description: distinct keys, still a total order.
        assert_ne!(k("R__a_b"), k("R__a b"));
        assert_eq!(k("R__a b").cmp(&k("R__a_b")), Ordering::Less);
    }

    #[test]
    fn repeatable_keys_are_shared_by_clones_and_freed_with_the_last() {
        let views = k("R__views");
        let copy = views.clone();
        let (MigrationKey::Repeatable(held), MigrationKey::Repeatable(shared)) = (&views, &copy)
        else {
            panic!("repeatables");
        };
        assert!(Arc::ptr_eq(held, shared), "a clone allocates nothing");
        let weak = Arc::downgrade(held);
        drop((views, copy));
        assert!(weak.upgrade().is_none(), "no table keeps the description");
        assert!("R__ padded".parse::<MigrationKey>().is_err());
    }

    #[test]
    fn repeatable_keys_are_refused_when_empty_or_too_long() {
        assert!("R__views ".parse::<MigrationKey>().is_err());
        assert!("R__ views".parse::<MigrationKey>().is_err());
        assert!("R__".parse::<MigrationKey>().is_err());
        assert!("1..2".parse::<MigrationKey>().is_err());
        assert!(MigrationKey::repeatable("a\nb").is_err());
        let long = "x".repeat(MAX_REPEATABLE_KEY_BYTES - REPEATABLE_PREFIX.len());
        assert!(MigrationKey::repeatable(&long).is_ok());
        let err = MigrationKey::repeatable(&format!("{long}x")).unwrap_err();
        assert_eq!(err.reason, "a repeatable's key is at most 128 bytes");
    }
}
