//! A migration's version: an integer (`20240313170000`, sqlx, diesel, golang-migrate,
//! dbmate, refinery, Flyway's `V3`) or Flyway's dotted version (`V1.2.3`, `V1_2`), ordered
//! as Flyway orders them: part by part, numerically, missing parts read as 0, so
//! `1 < 1.1 < 1.2 < 1.10 < 2` and `1.0` is the same version as `1` (Flyway's
//! `MigrationVersion.compareTo`).
//!
//! A Flyway repeatable migration (`R__<description>.sql`) has no version: its key is a
//! [`MigrationKey::Repeatable`](super::MigrationKey) (`key.rs`), so what can only be
//! numbered (a target, the current version, a baseline, a backup's version) is a
//! [`Version`] and cannot be a repeatable.

use std::{cmp::Ordering, fmt, hash, str::FromStr};

use super::REPEATABLE_PREFIX;

/// Most dot-separated parts a version may have (`1.2.3.4.5.6`).
pub const MAX_VERSION_PARTS: usize = 6;

/// A migration's numbered version: the first part is any `i64` (an integer version, a
/// timestamp), the others up to `u32::MAX`. `Copy`: 32 bytes, no allocation.
///
/// Equality, order and hash look at the numbers only: `1`, `1.0` and `1_0` are one
/// version. [`fmt::Display`] writes an integer as it is and a dotted version with dots, as
/// many parts as were written.
#[derive(Clone, Copy)]
pub struct Version {
    first: i64,
    /// The parts after the first, then zeros.
    rest: [u32; MAX_VERSION_PARTS - 1],
    /// How many parts were written; 1 for an integer.
    len: u8,
}

/// A text that is not a version (or, for a [`MigrationKey`](super::MigrationKey), not a
/// repeatable's key).
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
        }
    }

    /// The version as an integer, when it is one (`None` for a dotted version, even `2.0`).
    pub fn as_i64(&self) -> Option<i64> {
        (self.len == 1).then_some(self.first)
    }

    /// True for a version written with more than one part (`1.2`, `2.0`).
    pub fn is_dotted(&self) -> bool {
        self.len > 1
    }

    /// The parts as written, e.g. `[1, 2, 3]` for `1.2.3`.
    pub fn parts(&self) -> impl Iterator<Item = i64> + '_ {
        let rest = &self.rest[..usize::from(self.len).saturating_sub(1)];
        std::iter::once(self.first).chain(rest.iter().map(|&p| i64::from(p)))
    }
}

impl From<i64> for Version {
    fn from(n: i64) -> Self {
        Self::integer(n)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        (self.first, self.rest) == (other.first, other.rest)
    }
}

impl Eq for Version {}

impl PartialEq<i64> for Version {
    fn eq(&self, other: &i64) -> bool {
        *self == Self::integer(*other)
    }
}

impl Ord for Version {
    /// Part by part, numerically, missing parts as 0.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.first, self.rest).cmp(&(other.first, other.rest))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl hash::Hash for Version {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        (self.first, self.rest).hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

    /// Parses an integer (`20240313170000`, `-1`) or dotted digits (`1.2.3`; Flyway's
    /// `1_2` is turned into `1.2` by its reader, not here). A repeatable's key (`R__views`)
    /// is no version: [`MigrationKey`](super::MigrationKey)'s `FromStr` reads it.
    ///
    /// # Errors
    /// [`VersionError`] for a repeatable's key, an empty part, a character other than
    /// digits and dots, a first part above `i64::MAX` or a later one above `u32::MAX`, or
    /// more than [`MAX_VERSION_PARTS`] parts.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| VersionError {
            text: text.to_owned(),
            reason,
        };
        if text.starts_with(REPEATABLE_PREFIX) {
            return Err(refuse("a repeatable migration has no version"));
        }
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
        stored(d)
    }
}

/// A version or key as stored: a JSON number (an integer version) or its text, parsed.
pub(super) fn stored<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<i64> + FromStr,
    T::Err: fmt::Display,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Number(i64),
        Text(String),
    }
    match <Stored as serde::Deserialize>::deserialize(d)? {
        Stored::Number(n) => Ok(T::from(n)),
        Stored::Text(t) => t.parse().map_err(serde::de::Error::custom),
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
        assert!(std::mem::size_of::<Version>() <= 32);
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
            "R__views",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert_eq!(err.text, bad);
        }
    }

    #[test]
    fn integers_serialize_as_numbers_and_dotted_as_text() {
        let json = serde_json::to_string(&[v("3"), v("1.2.3")]).unwrap();
        assert_eq!(json, r#"[3,"1.2.3"]"#);
        let back: Vec<Version> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [v("3"), v("1.2.3")]);
    }
}
