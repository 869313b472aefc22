//! Tenants discovered by a query against a catalog database
//! (`[fleets.NAME.discovery] dsn = "…", query = "SELECT id, dsn, labels FROM tenants"`), read
//! at start, every `refresh`, and on demand (`Fleet.RefreshTenants`).
//!
//! The query's first three columns are the tenant's id, its DSN and its labels as a JSON
//! object (text, or a JSON column; NULL for none). It runs wrapped as
//! `SELECT … FROM (<query>) AS avocet_discovery` with each column cast to text, so any of the
//! three databases can hold the catalog and any column type reads the same.

use std::{collections::BTreeMap, sync::Arc};

use sqlx::{Connection, Row};

use super::{Fleet, FleetError, NewTenant, Tenant, TenantSource};
use crate::{
    config::DiscoveryConfig,
    model::{DialectKind, check_id, check_label, redact_secrets},
};

/// One row of a discovery query.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Discovered {
    /// The tenant's id.
    pub(crate) id: String,
    /// Its DSN. Secret.
    pub(crate) dsn: String,
    /// Its labels, or why the row's labels value is not a JSON object of strings.
    pub(crate) labels: Result<BTreeMap<String, String>, String>,
}

/// What one discovery changed in its fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryReport {
    /// Tenants the query returned (valid or not).
    pub found: usize,
    /// Ids added to the fleet.
    pub added: Vec<String>,
    /// Ids no longer returned, removed from the fleet.
    pub removed: Vec<String>,
    /// Ids whose DSN or labels changed.
    pub changed: Vec<String>,
    /// Rows left out, each with why: an id the fleet has from its configuration or the
    /// API, a duplicate row, a bad id, label or DSN.
    pub rejected: Vec<String>,
}

/// Why the catalog could not be read.
#[derive(Debug, thiserror::Error)]
#[error("fleet {fleet:?}: discovery query: {message}")]
pub struct DiscoveryError {
    /// The fleet.
    pub fleet: String,
    /// The driver's error, with any DSN password masked.
    pub message: String,
}

/// Runs the fleet's discovery query once.
///
/// # Errors
/// [`DiscoveryError`] when the catalog cannot be reached or the query fails.
pub(crate) async fn discover(
    fleet: &str,
    cfg: &DiscoveryConfig,
) -> Result<Vec<Discovered>, DiscoveryError> {
    let failed = |e: sqlx::Error| DiscoveryError {
        fleet: fleet.to_owned(),
        message: redact_secrets(&e.to_string()),
    };
    sqlx::any::install_default_drivers();
    let text = match cfg.dsn.split_once(':').map(|(s, _)| s.to_ascii_lowercase()) {
        Some(s) if DialectKind::Mysql.schemes().contains(&s.as_str()) => "CHAR",
        _ => "TEXT",
    };
    let sql = format!(
        "SELECT CAST(avocet_discovery.id AS {text}), CAST(avocet_discovery.dsn AS {text}), \
         CAST(avocet_discovery.labels AS {text}) FROM ({query}) AS avocet_discovery",
        query = cfg.query.trim().trim_end_matches(';'),
    );
    let mut conn = tokio::time::timeout(cfg.timeout, sqlx::AnyConnection::connect(&cfg.dsn))
        .await
        .map_err(|_| DiscoveryError {
            fleet: fleet.to_owned(),
            message: format!("no connection within {} ms", cfg.timeout.as_millis()),
        })?
        .map_err(failed)?;
    let rows = sqlx::query(&sql)
        .fetch_all(&mut conn)
        .await
        .map_err(failed)?;
    let _ = conn.close().await;
    rows.iter()
        .map(|row| {
            let id: Option<String> = row.try_get(0)?;
            let dsn: Option<String> = row.try_get(1)?;
            let labels: Option<String> = row.try_get(2)?;
            Ok((id, dsn, labels))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(failed)
        .map(|rows| {
            rows.into_iter()
                .map(|(id, dsn, labels)| Discovered {
                    id: id.unwrap_or_default(),
                    dsn: dsn.unwrap_or_default(),
                    // A malformed labels value is reported by `apply` as the row's problem.
                    labels: labels.map_or_else(
                        || Ok(BTreeMap::new()),
                        |l| serde_json::from_str(&l).map_err(|e| e.to_string()),
                    ),
                })
                .collect()
        })
}

impl Fleet {
    /// Makes the fleet's discovered tenants exactly `found`: adds new ids, removes those no
    /// longer found, and replaces those whose DSN or labels changed (rollouts already
    /// running keep the old handle). Configured and registered tenants are never touched:
    /// a row with their id is rejected and reported.
    pub(crate) fn apply_discovery(&self, found: Vec<Discovered>) -> DiscoveryReport {
        let mut report = DiscoveryReport {
            found: found.len(),
            ..Default::default()
        };
        let mut list = self
            .tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = std::collections::BTreeSet::new();
        let mut next: Vec<Arc<Tenant>> = list
            .iter()
            .filter(|t| t.source != TenantSource::Discovery)
            .cloned()
            .collect();
        for row in found {
            if let Err(why) = self.check_row(&row, &next, &seen) {
                report.rejected.push(why);
                continue;
            }
            let previous = list
                .iter()
                .find(|t| t.source == TenantSource::Discovery && t.id == row.id);
            let tenant = match previous {
                Some(old) if old.discovered.as_deref() == Some(&row) => old.clone(),
                _ => match self.discovered_tenant(&row) {
                    Ok(t) => {
                        match previous {
                            Some(_) => report.changed.push(row.id.clone()),
                            None => report.added.push(row.id.clone()),
                        }
                        t
                    }
                    Err(e) => {
                        report.rejected.push(format!("{:?}: {e}", row.id));
                        continue;
                    }
                },
            };
            seen.insert(tenant.id.clone());
            next.push(tenant);
        }
        report.removed = list
            .iter()
            .filter(|t| t.source == TenantSource::Discovery && !seen.contains(&t.id))
            .map(|t| t.id.clone())
            .collect();
        *list = Arc::new(next);
        report
    }

    fn check_row(
        &self,
        row: &Discovered,
        others: &[Arc<Tenant>],
        seen: &std::collections::BTreeSet<String>,
    ) -> Result<(), String> {
        check_id(&row.id)?;
        if seen.contains(&row.id) {
            return Err(format!("{:?}: returned twice by the query", row.id));
        }
        if let Some(other) = others.iter().find(|t| t.id == row.id) {
            return Err(format!(
                "{:?}: the fleet has this id from the {} already",
                row.id,
                other.source.origin()
            ));
        }
        let labels = row
            .labels
            .as_ref()
            .map_err(|e| format!("{:?}: labels are not a JSON object of strings: {e}", row.id))?;
        for (k, v) in labels {
            check_label(k, v).map_err(|e| format!("{:?}: {e}", row.id))?;
        }
        Ok(())
    }

    /// The tenant of a row [`Fleet::check_row`] accepted.
    fn discovered_tenant(&self, row: &Discovered) -> Result<Arc<Tenant>, FleetError> {
        let none = BTreeMap::new();
        let mut tenant = self.new_tenant(NewTenant {
            id: &row.id,
            dsn: &row.dsn,
            schema: None,
            labels: row.labels.as_ref().unwrap_or(&none),
            source: TenantSource::Discovery,
        })?;
        if let Some(t) = Arc::get_mut(&mut tenant) {
            t.discovered = Some(Box::new(row.clone()));
        }
        Ok(tenant)
    }
}
