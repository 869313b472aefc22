//! Tenant selectors: explicit ids plus Kubernetes label-selector syntax
//! (Kubernetes docs, "Labels and Selectors": equality- and set-based requirements).

use crate::model::Labels;

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key=value`, `key==value`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (a,b)` (also true when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    Absent(String),
}

/// A selector that does not parse; the message quotes the offending requirement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {message}")]
pub struct SelectorError {
    /// The whole selector text.
    pub selector: String,
    /// What is wrong with it.
    pub message: String,
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl std::fmt::Display for LabelSelector {
    /// The selector as people write it: `key=value` and `key!=value` for one value,
    /// `key in (a,b)` and `key notin (a,b)` for several (it parses back to the same
    /// selector).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::In(k, v) if v.len() == 1 => format!("{k}={}", v[0]),
                Requirement::NotIn(k, v) if v.len() == 1 => format!("{k}!={}", v[0]),
                Requirement::In(k, v) => format!("{k} in ({})", v.join(",")),
                Requirement::NotIn(k, v) => format!("{k} notin ({})", v.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::Absent(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl LabelSelector {
    /// True for the empty selector, which matches every tenant.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses `region=eu,tier!=free,canary,!legacy,zone in (a,b),plan notin (x)`. An empty
    /// string selects everything.
    ///
    /// # Errors
    /// [`SelectorError`] for an empty requirement, a bad key or value, or a bad set.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |message: String| SelectorError {
            selector: text.to_owned(),
            message,
        };
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for raw in split_top_level(text) {
            let part = raw.trim();
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotIn(k.trim().into(), vec![v.trim().into()])
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::In(k.trim().into(), vec![v.trim().into()])
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else if let Some((k, set)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), parse_set(set).map_err(&err)?)
            } else if let Some((k, set)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), parse_set(set).map_err(&err)?)
            } else {
                Requirement::Exists(part.into())
            };
            let (key, values) = match &req {
                Requirement::In(k, v) | Requirement::NotIn(k, v) => (k, v.as_slice()),
                Requirement::Exists(k) | Requirement::Absent(k) => (k, &[][..]),
            };
            if !valid_token(key) {
                return Err(err(format!("bad key in {part:?}")));
            }
            if let Some(v) = values.iter().find(|v| !v.is_empty() && !valid_token(v)) {
                return Err(err(format!("bad value {v:?} in {part:?}")));
            }
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// True when `labels` meet every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

fn parse_set(set: &str) -> Result<Vec<String>, String> {
    let inner = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected (a,b,…), found {set:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let map: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Labels::from(&map)
    }

    #[test]
    fn equality_set_and_existence_requirements() {
        let eu_pro = labels(&[("region", "eu"), ("tier", "pro"), ("canary", "")]);
        let us_free = labels(&[("region", "us"), ("tier", "free")]);
        let s = LabelSelector::parse("region=eu,tier!=free").unwrap();
        assert!(s.matches(&eu_pro) && !s.matches(&us_free));
        let s = LabelSelector::parse("region in (us, ap), !canary").unwrap();
        assert!(!s.matches(&eu_pro) && s.matches(&us_free));
        let s = LabelSelector::parse("canary,tier notin (free)").unwrap();
        assert!(s.matches(&eu_pro) && !s.matches(&us_free));
        assert!(LabelSelector::parse("").unwrap().matches(&us_free));
    }

    /// A selector is echoed as it was written, and its echo parses back to it.
    #[test]
    fn a_selector_is_shown_as_written() {
        for text in [
            "region=mars",
            "tier!=free,canary,!legacy",
            "zone in (a,b),plan notin (x,y)",
        ] {
            let s = LabelSelector::parse(text).unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        assert!(LabelSelector::parse("region=eu,,tier=pro").is_err());
        assert!(LabelSelector::parse("region in eu").is_err());
        assert!(LabelSelector::parse("re gion=eu").is_err());
        assert!(LabelSelector::parse("region=e'u").is_err());
    }
}
