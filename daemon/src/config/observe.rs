//! The observability keys: `admin_listen`, which an empty string turns off, and
//! `log_format` ([`LogFormat`]).

use serde::{Deserialize, Serialize};

/// How log records are written to stderr (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human lines with their span path (colour only on a terminal). The default.
    #[default]
    Pretty,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`,
    /// `spans`), for a log collector.
    Json,
}

/// `Option<SocketAddr>` as a string: `""` is `None` (turned off), anything else an address.
pub(super) mod optional_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(in crate::config) fn serialize<S: Serializer>(
        addr: &Option<SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str(""),
        }
    }

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|e| {
            D::Error::custom(format!(
                "{text:?} is not an address such as \"127.0.0.1:9464\" ({e}); \"\" turns the \
                 admin listener off"
            ))
        })
    }
}
