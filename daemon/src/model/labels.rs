//! A tenant's labels, kept compact: a fleet of 100,000 tenants with a label or two each
//! should not pay for a B-tree node (about 500 bytes) per tenant.

use std::collections::BTreeMap;

/// Labels as `(key, value)` pairs sorted by key, in one allocation of pairs; a tenant
/// without labels allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// The value of `key`, if the tenant has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// True when the tenant has `key`, whatever its value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The pairs, ascending by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The labels as a map, for responses.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Self {
        // A map iterates in key order, which `get` relies on.
        Self(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_every_key_and_only_those() {
        let map: BTreeMap<String, String> = [("tier", "pro"), ("region", "eu"), ("canary", "")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let labels = Labels::from(&map);
        assert_eq!(labels.get("region"), Some("eu"));
        assert_eq!(labels.get("canary"), Some(""));
        assert!(labels.contains_key("tier") && !labels.contains_key("zone"));
        assert_eq!(labels.to_map(), map);
        assert!(Labels::default().get("region").is_none());
    }
}
