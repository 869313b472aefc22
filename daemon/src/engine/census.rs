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
    fleet::Tenant,
    model::{
        FingerprintOptions, HistoryRecord, MigrationSet, SchemaChange, SchemaModel, Version,
        diff_schemas, hash_text,
    },
    plan,
    store::{CensusRow, Store, StoreError, now_ms},
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
    /// Reuse a tenant's kept result younger than this when its history is unchanged
    /// (`--max-age`); `None`: read every tenant.
    pub max_age: Option<std::time::Duration>,
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

/// How many of `tenants` (of `fleet`) their last census put in a drift class: the one count
/// `Status` and the `avocet_fleet_schema_drift_tenants` gauge show (DESIGN.md rule 9). A
/// tenant never censused is not counted.
///
/// # Errors
/// [`StoreError`] when the store cannot be read.
pub(super) async fn drifted<'a>(
    store: &Store,
    fleet: &str,
    tenants: impl Iterator<Item = &'a str>,
) -> Result<u32, StoreError> {
    let drifted: std::collections::HashSet<String> = store
        .census_rows(fleet)
        .await?
        .into_iter()
        .filter(|r| r.drifted)
        .map(|r| r.tenant)
        .collect();
    Ok(tenants.filter(|t| drifted.contains(*t)).count() as u32)
}

/// What one tenant's read gave: its version, fingerprint, the model when it was read now
/// (`None`: a kept result reused), and the digest of its history.
type Read = (Option<Version>, String, Option<SchemaModel>, String);

/// A digest of what a history says is applied and with which checksums: a tenant whose
/// digest is unchanged ran nothing since its last census.
fn history_digest(history: &[HistoryRecord]) -> String {
    let lines: Vec<String> = history
        .iter()
        .map(|r| format!("{} {} {}", r.version, r.checksum, r.status.as_str()))
        .collect();
    hash_text(&lines.join("\n"))
}

impl Engine {
    /// Reads every selected tenant's schema, sending a [`CensusProgress`] on `progress`
    /// every [`PROGRESS_EVERY`] tenants and after the last (a closed receiver only stops the
    /// reports), groups the fleet into classes, and keeps each tenant's result (under the
    /// default options). With `max_age`, a tenant whose kept result is younger and whose
    /// history is unchanged is not read again (its history is: one round trip); one tenant
    /// of each class is read for the model its diff needs. Touches no tenant.
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
        } = self.scope(&req.fleet, &req.selector).await?;
        if let Some(focus) = &req.focus {
            fleet.tenant(focus)?;
        }
        let total = tenants.len() as u32;
        let opts = req.options;
        let default_opts = opts == FingerprintOptions::default();
        let kept: HashMap<String, CensusRow> = match (req.max_age, default_opts) {
            (Some(_), true) => self
                .runner
                .store()
                .census_rows(&fleet.name)
                .await?
                .into_iter()
                .map(|r| (r.tenant.clone(), r))
                .collect(),
            _ => HashMap::new(),
        };
        let now = now_ms();
        let fresh = |row: &CensusRow| {
            req.max_age
                .is_some_and(|age| now.saturating_sub(row.at_ms) <= age.as_millis() as i64)
        };
        let (set, kept, fresh) = (&set, &kept, &fresh);
        let mut reads = stream::iter(tenants.iter().cloned())
            .map(|tenant| async move {
                let read = read_one(
                    &tenant,
                    set,
                    opts,
                    kept.get(&tenant.id).filter(|r| fresh(r)),
                )
                .await;
                (tenant, read)
            })
            .buffered(CENSUS_IN_FLIGHT);
        let mut readings = Vec::with_capacity(tenants.len());
        let mut models: HashMap<String, SchemaModel> = HashMap::new();
        let mut unreadable = Vec::new();
        let mut histories = HashMap::new();
        let mut reused = HashMap::new();
        let mut done = 0u32;
        while let Some((tenant, read)) = reads.next().await {
            done += 1;
            match read {
                Ok((version, fingerprint, model, history)) => {
                    match model {
                        Some(model) => {
                            models.entry(fingerprint.clone()).or_insert(model);
                        }
                        None => {
                            reused.entry(fingerprint.clone()).or_insert(tenant.clone());
                        }
                    }
                    histories.insert(tenant.id.clone(), history);
                    readings.push(Reading {
                        tenant: tenant.id.clone(),
                        version,
                        fingerprint,
                    });
                }
                Err(e) => unreadable.push((tenant.id.clone(), unreadable_text(&e))),
            }
            if (done as usize).is_multiple_of(PROGRESS_EVERY) || done == total {
                let _ = progress.try_send(CensusProgress { done, total });
            }
        }
        // A class whose tenants were all reused: one of them read for its model.
        for (fingerprint, tenant) in reused {
            if !models.contains_key(&fingerprint)
                && let Ok((_, model)) = tenant.read_schema().await
            {
                models.insert(fingerprint, model);
            }
        }
        let recorded = match default_opts {
            true => self.recorded_expected(&fleet.name, set).await?,
            false => HashMap::new(),
        };
        let classes = classify(&readings, &models, &recorded);
        if default_opts {
            self.keep_census(&fleet.name, &classes, &histories, kept, now)
                .await;
        }
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

    /// Keeps each tenant's class as its last census: the time of a reused result stays
    /// its read's. A store that fails costs the record (logged), not the answer.
    async fn keep_census(
        &self,
        fleet: &str,
        classes: &[DriftClass],
        histories: &HashMap<String, String>,
        kept: &HashMap<String, CensusRow>,
        now: i64,
    ) {
        let rows: Vec<CensusRow> = classes
            .iter()
            .flat_map(|c| {
                c.tenants.iter().map(move |t| {
                    let history = histories.get(t).cloned().unwrap_or_default();
                    let at_ms = match kept.get(t) {
                        Some(k) if k.history == history && k.fingerprint == c.fingerprint => {
                            k.at_ms
                        }
                        _ => now,
                    };
                    CensusRow {
                        tenant: t.clone(),
                        version: c
                            .version
                            .as_ref()
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        fingerprint: c.fingerprint.clone(),
                        drifted: !c.expected,
                        history,
                        at_ms,
                    }
                })
            })
            .collect();
        if let Err(e) = self.runner.store().put_census(fleet, &rows).await {
            tracing::warn!(fleet, "keeping census results: {e}");
        }
    }

    /// Each tenant of `tenants` (of `fleet`) with its census class, itself alone in it: a
    /// census of those tenants (`verify --schema`).
    ///
    /// # Errors
    /// As [`Engine::census`].
    pub(super) async fn schema_classes(
        &self,
        fleet: &str,
        tenants: &[std::sync::Arc<Tenant>],
    ) -> Result<HashMap<String, DriftClass>, EngineError> {
        let req = CensusRequest {
            fleet: fleet.to_owned(),
            selector: Selector {
                ids: tenants.iter().map(|t| t.id.clone()).collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        let (progress, _) = mpsc::channel(1);
        let census = self.census(req, progress).await?;
        Ok(census
            .classes
            .into_iter()
            .flat_map(|c| {
                c.tenants.clone().into_iter().map(move |t| {
                    let class = DriftClass {
                        tenants: vec![t.clone()],
                        ..c.clone()
                    };
                    (t, class)
                })
            })
            .collect())
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

    /// The expected fingerprints recorded at apply time for `fleet`'s set, per version
    /// (under the default options, which they were recorded with). A stored model that
    /// does not decode is left out: its fingerprint still decides the class.
    pub(super) async fn recorded_expected(
        &self,
        fleet: &str,
        set: &MigrationSet,
    ) -> Result<HashMap<Option<Version>, Recorded>, EngineError> {
        let rows = self
            .runner
            .store()
            .expected_schemas(fleet, &set.digest().to_string())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|e| {
                let version = match e.version.as_str() {
                    "" => None,
                    v => Some(v.parse::<Version>().ok()?),
                };
                let model = serde_json::from_str(&e.model).ok();
                Some((
                    version,
                    Recorded {
                        fingerprint: e.fingerprint,
                        model,
                    },
                ))
            })
            .collect())
    }
}

/// One tenant's census read: with a `kept` result young enough, its history alone, the
/// kept fingerprint reused when the history is unchanged; else its history and schema.
async fn read_one(
    tenant: &Tenant,
    set: &MigrationSet,
    opts: FingerprintOptions,
    kept: Option<&CensusRow>,
) -> Result<Read, DbError> {
    if let Some(kept) = kept {
        let history = tenant.read_history().await?;
        let digest = history_digest(&history);
        if digest == kept.history {
            let version = plan::current_version(set, &history);
            return Ok((version, kept.fingerprint.clone(), None, digest));
        }
    }
    let (history, model) = tenant.read_schema().await?;
    let version = plan::current_version(set, &history);
    Ok((
        version,
        model.fingerprint(opts),
        Some(model),
        history_digest(&history),
    ))
}

/// Why a tenant could not be read, as the answer says it.
fn unreadable_text(e: &DbError) -> String {
    e.to_string()
}
