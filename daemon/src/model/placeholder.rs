//! `${name}` placeholders in a script: `${tenant_id}`, `${schema}`, `${fleet}` and the
//! fleet's `[fleets.NAME.vars]`, substituted per tenant just before the statements run. The
//! checksum covers the file as written, so a value never changes it. Each value is quoted for
//! where it lands, or refused.

use std::{borrow::Cow, collections::BTreeMap, ops::Range};

use serde::{Deserialize, Serialize};

/// The placeholders every tenant has a value for; a fleet's vars may not take these names.
pub const BUILTIN_PLACEHOLDERS: [&str; 3] = ["tenant_id", "schema", "fleet"];

/// True when `name` can be a placeholder's: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_placeholder_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where a placeholder sits in its statement, which decides how its value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlaceholderContext {
    /// Outside any quotes: the value must be a bare word (`[A-Za-z0-9_]+`), such as an
    /// identifier or a number, or it is refused.
    Bare,
    /// Inside a quoted string or identifier closed by `quote`: the quote is doubled
    /// (SQL-92 section 5.3), and a backslash too where the dialect escapes with one (MySQL).
    Quoted {
        /// `'`, `"` or `` ` ``.
        quote: char,
        /// The dialect reads `\` as an escape inside it.
        backslash: bool,
    },
    /// Inside a PostgreSQL dollar-quoted string: a value holding `$` is refused (it could
    /// close the string).
    Dollar,
}

/// One `${name}` of a script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    /// The name between the braces.
    pub name: String,
    /// Byte range of `${name}` in the script's normalised text.
    pub bytes: Range<usize>,
    /// 1-based line in the file.
    pub line: u64,
    /// Where it sits.
    pub context: PlaceholderContext,
}

/// Why a script's placeholders cannot be filled for a tenant. Nothing runs then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceholderError {
    /// No value has that name.
    #[error("line {line}: unknown placeholder ${{{name}}} (known: {known})")]
    Unknown {
        /// The name.
        name: String,
        /// 1-based line.
        line: u64,
        /// The names that have values, comma-separated.
        known: String,
    },
    /// The value cannot be written safely where the placeholder sits.
    #[error("line {line}: the value of ${{{name}}} {why}")]
    Unsafe {
        /// The name.
        name: String,
        /// 1-based line.
        line: u64,
        /// What is wrong with it there.
        why: &'static str,
    },
}

/// `value` written for `context`.
///
/// # Errors
/// The reason, when it cannot be written there.
fn quoted(value: &str, context: PlaceholderContext) -> Result<Cow<'_, str>, &'static str> {
    if value.contains('\0') {
        return Err("holds a NUL character");
    }
    match context {
        PlaceholderContext::Bare => {
            let word = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if word {
                Ok(Cow::Borrowed(value))
            } else {
                Err("is not a bare word ([A-Za-z0-9_]+), so it cannot stand outside quotes")
            }
        }
        PlaceholderContext::Quoted { quote, backslash } => {
            let mut out = String::with_capacity(value.len() + 2);
            for c in value.chars() {
                if c == quote || (backslash && c == '\\') {
                    out.push(c);
                }
                out.push(c);
            }
            Ok(Cow::Owned(out))
        }
        PlaceholderContext::Dollar if value.contains('$') => {
            Err("holds `$`, which could end the dollar-quoted string")
        }
        PlaceholderContext::Dollar => Ok(Cow::Borrowed(value)),
    }
}

/// The statements `spans` of `sql` with every placeholder of `placeholders` filled from
/// `vars`; a statement without any is borrowed as it is.
///
/// # Errors
/// [`PlaceholderError`] for the first placeholder with no value or an unsafe one.
pub(super) fn render<'a>(
    sql: &'a str,
    spans: &[super::StatementSpan],
    placeholders: &[Placeholder],
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Cow<'a, str>>, PlaceholderError> {
    spans
        .iter()
        .map(|span| {
            let inside: Vec<&Placeholder> = placeholders
                .iter()
                .filter(|p| p.bytes.start >= span.bytes.start && p.bytes.end <= span.bytes.end)
                .collect();
            if inside.is_empty() {
                return Ok(Cow::Borrowed(&sql[span.bytes.clone()]));
            }
            let mut out = String::with_capacity(span.bytes.len());
            let mut at = span.bytes.start;
            for p in inside {
                let value = vars.get(&p.name).ok_or_else(|| PlaceholderError::Unknown {
                    name: p.name.clone(),
                    line: p.line,
                    known: vars.keys().cloned().collect::<Vec<_>>().join(", "),
                })?;
                let value = quoted(value, p.context).map_err(|why| PlaceholderError::Unsafe {
                    name: p.name.clone(),
                    line: p.line,
                    why,
                })?;
                out.push_str(&sql[at..p.bytes.start]);
                out.push_str(&value);
                at = p.bytes.end;
            }
            out.push_str(&sql[at..span.bytes.end]);
            Ok(Cow::Owned(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_where_they_land_or_refused() {
        let q = |quote, backslash| PlaceholderContext::Quoted { quote, backslash };
        assert_eq!(quoted("o'brien", q('\'', false)).unwrap(), "o''brien");
        assert_eq!(quoted("a\\'b", q('\'', true)).unwrap(), "a\\\\''b");
        assert_eq!(quoted("x\"y", q('"', false)).unwrap(), "x\"\"y");
        assert_eq!(
            quoted("tenant_42", PlaceholderContext::Bare).unwrap(),
            "tenant_42"
        );
        for bad in ["a b", "a;DROP", "", "é"] {
            assert!(quoted(bad, PlaceholderContext::Bare).is_err(), "{bad:?}");
        }
        assert!(quoted("$$", PlaceholderContext::Dollar).is_err());
        assert!(quoted("a\0", q('\'', false)).is_err());
    }
}
