//! A migration's version: an integer (`20240313170000`, sqlx, diesel, golang-migrate,
//! dbmate, refinery, Flyway's `V3`) or Flyway's dotted version (`V1.2.3`, `V1_2`), ordered
//! as Flyway orders them: part by part, numerically, missing parts read as 0, so
//! `1 < 1.1 < 1.2 < 1.10 < 2` and `1.0` is the same version as `1` (Flyway's
//! `MigrationVersion.compareTo`).
//!
//! A Flyway repeatable migration (`R__<description>.sql`) has no version. Its key in the
//! history table and in events is `R__<description>` (on the wire, a `Version` message whose
//! `repeatable` is the description), a [`Version`] that orders
//! after every numbered one, repeatables among themselves by description: the order Flyway
//! runs them in ("repeatable migrations are always applied last, after all pending
//! versioned migrations … in the order of their description", Flyway docs, "Migrations"),
//! the description read as Flyway reads it from the file name, underscores as spaces
//! (`R__Customer_view` runs before `R__CustomerAudit`).

use std::{cmp::Ordering, fmt, hash, str::FromStr, sync::Arc};

/// Most dot-separated parts a version may have (`1.2.3.4.5.6`).
pub const MAX_VERSION_PARTS: usize = 6;

/// How a repeatable migration's key starts: `R__views` is the repeatable `views`.
pub const REPEATABLE_PREFIX: &str = "R__";

/// Longest repeatable key in bytes, prefix included: what MySQL's `VARCHAR(128)` history
/// column holds.
pub const MAX_REPEATABLE_KEY_BYTES: usize = 128;

/// A migration's version: the first part is any `i64` (an integer version, a timestamp),
/// the others up to `u32::MAX`; or a repeatable migration's description, shared by every
/// clone (an `Arc<str>`: a clone allocates nothing, and the description is freed with its
/// last holder, so no process-wide table grows with what requests or history tables name).
///
/// Equality, order and hash look at the numbers only: `1`, `1.0` and `1_0` are one
/// version; repeatables are equal when their descriptions are, and order after every
/// numbered version, by description with underscores read as spaces (byte order; Flyway
/// compares UTF-16 units, which differs only between astral and U+E000–U+FFFF characters),
/// then as written. [`fmt::Display`] writes an integer as it is, a dotted version with dots
/// and a repeatable as `R__<description>`.
#[derive(Clone)]
pub struct Version {
    first: i64,
    /// The parts after the first, then zeros.
    rest: [u32; MAX_VERSION_PARTS - 1],
    /// How many parts were written; 1 for an integer, 0 for a repeatable.
    len: u8,
    /// A repeatable migration's description; `None` for a numbered version.
    repeatable: Option<Arc<str>>,
}

/// A repeatable's description as Flyway reads it from the file name (`R__Create_views.sql`
/// is `Create views`): underscores as spaces. Flyway orders repeatables by it, keys their
/// history rows by it, and refuses two files with one.
pub(crate) fn flyway_description(name: &str) -> String {
    name.replace('_', " ")
}

/// A text that is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a version: {reason}")]
pub struct VersionError {
    /// The text read.
    pub text: String,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl Version {
    /// The integer version `n`.
    pub const fn integer(n: i64) -> Self {
        Self {
            first: n,
            rest: [0; MAX_VERSION_PARTS - 1],
            len: 1,
            repeatable: None,
        }
    }

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
        Ok(Self {
            first: 0,
            rest: [0; MAX_VERSION_PARTS - 1],
            len: 0,
            repeatable: Some(Arc::from(name)),
        })
    }

    /// A repeatable migration's description (`views` for `R__views`); `None` for a
    /// numbered version.
    pub fn repeatable_name(&self) -> Option<&str> {
        self.repeatable.as_deref()
    }

    /// True for a repeatable migration's key: it has no place among numbered versions
    /// (never the current version, never rolled back, never below a target).
    pub fn is_repeatable(&self) -> bool {
        self.repeatable.is_some()
    }

    /// The version as an integer, when it is one (`None` for a dotted version, even `2.0`,
    /// and for a repeatable).
    pub fn as_i64(&self) -> Option<i64> {
        (self.len == 1).then_some(self.first)
    }

    /// True for a version written with more than one part (`1.2`, `2.0`).
    pub fn is_dotted(&self) -> bool {
        self.len > 1
    }

    /// The parts as written, e.g. `[1, 2, 3]` for `1.2.3`; none for a repeatable.
    pub fn parts(&self) -> impl Iterator<Item = i64> + '_ {
        let rest = &self.rest[..usize::from(self.len).saturating_sub(1)];
        let first = (self.len > 0).then_some(self.first);
        first.into_iter().chain(rest.iter().map(|&p| i64::from(p)))
    }
}

impl From<i64> for Version {
    fn from(n: i64) -> Self {
        Self::integer(n)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        (self.repeatable_name(), self.first, self.rest)
            == (other.repeatable_name(), other.first, other.rest)
    }
}

impl Eq for Version {}

impl PartialEq<i64> for Version {
    fn eq(&self, other: &i64) -> bool {
        *self == Self::integer(*other)
    }
}

impl Ord for Version {
    /// Numbered versions part by part, then repeatables by Flyway's description
    /// (underscores as spaces), then as written.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.repeatable_name(), other.repeatable_name()) {
            (None, None) => (self.first, self.rest).cmp(&(other.first, other.rest)),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => flyway_description(a)
                .cmp(&flyway_description(b))
                .then_with(|| a.cmp(b)),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl hash::Hash for Version {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        (self.repeatable_name(), self.first, self.rest).hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.repeatable_name() {
            return write!(f, "{REPEATABLE_PREFIX}{name}");
        }
        for (i, part) in self.parts().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    /// Parses an integer (`20240313170000`, `-1`), dotted digits (`1.2.3`; Flyway's
    /// `1_2` is turned into `1.2` by its reader, not here) or a repeatable's key
    /// (`R__views`, see [`Version::repeatable`]).
    ///
    /// # Errors
    /// [`VersionError`] for an empty part, a character other than digits and dots, a first
    /// part above `i64::MAX` or a later one above `u32::MAX`, more than
    /// [`MAX_VERSION_PARTS`] parts, or a repeatable key [`Version::repeatable`] refuses.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix(REPEATABLE_PREFIX) {
            return Self::repeatable(name);
        }
        let refuse = |reason| VersionError {
            text: text.to_owned(),
            reason,
        };
        if let Ok(n) = text.parse::<i64>()
            && !text.starts_with('+')
        {
            return Ok(Self::integer(n));
        }
        let mut version = Self::integer(0);
        let mut len = 0;
        for part in text.split('.') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refuse("parts are digits separated by single dots"));
            }
            match len {
                0 => version.first = part.parse().map_err(|_| refuse("a part above 2^63 - 1"))?,
                MAX_VERSION_PARTS => return Err(refuse("more than 6 parts")),
                n => {
                    version.rest[n - 1] = part
                        .parse()
                        .map_err(|_| refuse("a part after the first above 2^32 - 1"))?
                }
            }
            len += 1;
        }
        version.len = len as u8;
        Ok(version)
    }
}

impl serde::Serialize for Version {
    /// An integer version as a number (as stored before dotted versions), else a string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_i64() {
            Some(n) => s.serialize_i64(n),
            None => s.collect_str(self),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Number(i64),
            Text(String),
        }
        match Stored::deserialize(d)? {
            Stored::Number(n) => Ok(Self::integer(n)),
            Stored::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn dotted_versions_order_part_by_part_as_flyway_does() {
        let mut versions = ["2", "1.10", "1.2", "1", "1.1", "1.2.3", "0.9"].map(v);
        versions.sort();
        let shown: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.9", "1", "1.1", "1.2", "1.2.3", "1.10", "2"]);
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1.0").to_string(), "1.0");
        assert_eq!(v("20240313170000").as_i64(), Some(20240313170000));
        assert_eq!(v("2.0").as_i64(), None);
        assert_eq!(v("-3"), -3);
        assert_eq!(
            v("20240313170000.4294967295").to_string(),
            "20240313170000.4294967295"
        );
        assert!(std::mem::size_of::<Version>() <= 48);
    }

    #[test]
    fn malformed_versions_are_refused_with_the_reason() {
        for bad in [
            "",
            "1..2",
            "1.",
            ".1",
            "1.a",
            "+1",
            "1.2.3.4.5.6.7",
            "9.99999999999999999999",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert_eq!(err.text, bad);
        }
    }

    #[test]
    fn repeatables_order_after_every_version_by_description() {
        let mut versions = [
            v("R__views"),
            v("20240313170000"),
            v("R__functions"),
            v("1.2"),
        ];
        versions.sort();
        let shown: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1.2", "20240313170000", "R__functions", "R__views"]);
        let views = v("R__views");
        assert_eq!(views, Version::repeatable("views").unwrap());
        assert_eq!(views.repeatable_name(), Some("views"));
        assert!(views.is_repeatable() && !v("1.2").is_repeatable());
        assert_eq!(views.as_i64(), None);
        assert_eq!(views.parts().count(), 0);
        assert_ne!(views, Version::integer(0));
        let json = serde_json::to_string(&views).unwrap();
        assert_eq!(json, r#""R__views""#);
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), views);
    }

    #[test]
    fn repeatables_order_by_description_as_flyway_reads_it() {
        // Flyway's description of R__Customer_view.sql is "Customer view": the space sorts
        // before "A", where the file name's underscore would sort after it.
        let mut versions = [v("R__CustomerAudit"), v("R__Customer_view"), v("R__a b")];
        versions.sort();
        let shown: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["R__Customer_view", "R__CustomerAudit", "R__a b"]);
        // Written differently, one description: distinct keys, still a total order.
        assert_ne!(v("R__a_b"), v("R__a b"));
        assert_eq!(v("R__a b").cmp(&v("R__a_b")), Ordering::Less);
    }

    #[test]
    fn repeatable_keys_are_shared_by_clones_and_freed_with_the_last() {
        let views = v("R__views");
        let copy = views.clone();
        let held = views.repeatable.as_ref().expect("a repeatable");
        let shared = copy.repeatable.as_ref().expect("a repeatable");
        assert!(Arc::ptr_eq(held, shared), "a clone allocates nothing");
        let weak = Arc::downgrade(held);
        drop((views, copy));
        assert!(weak.upgrade().is_none(), "no table keeps the description");
        assert!("R__ padded".parse::<Version>().is_err());
    }

    #[test]
    fn repeatable_keys_are_refused_when_empty_or_too_long() {
        assert!("R__views ".parse::<Version>().is_err());
        assert!("R__ views".parse::<Version>().is_err());
        assert!("R__".parse::<Version>().is_err());
        assert!(Version::repeatable("a\nb").is_err());
        let long = "x".repeat(MAX_REPEATABLE_KEY_BYTES - REPEATABLE_PREFIX.len());
        assert!(Version::repeatable(&long).is_ok());
        let err = Version::repeatable(&format!("{long}x")).unwrap_err();
        assert_eq!(err.reason, "a repeatable's key is at most 128 bytes");
    }

    #[test]
    fn integers_serialize_as_numbers_and_dotted_as_text() {
        let json = serde_json::to_string(&[v("3"), v("1.2.3")]).unwrap();
        assert_eq!(json, r#"[3,"1.2.3"]"#);
        let back: Vec<Version> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [v("3"), v("1.2.3")]);
    }
}
