//! Each tenant's last-known state: what its history table said when the engine last read
//! or changed it. `Status` answers from it without touching any tenant.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Store, StoreError, get};
pub(crate) use crate::model::KnownState;
use crate::model::{Applied, MigrationKey, Version};

/// The `applied` column: what was applied, as JSON, and whether a record blocks an apply.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredApplied {
    /// Numbered versions applied, as text.
    versions: Vec<String>,
    /// Repeatables applied (their version text) and the checksum that ran.
    repeatables: BTreeMap<String, String>,
    /// [`KnownState::blocked`].
    blocked: bool,
}

/// The `applied` column of `s`: `None` for an unreachable tenant (nothing was read).
fn encode_applied(s: &KnownState) -> Option<String> {
    let applied = s.applied.as_ref()?;
    let stored = StoredApplied {
        versions: applied.versions.iter().map(Version::to_string).collect(),
        repeatables: applied
            .repeatables
            .iter()
            .map(|(v, sum)| (v.to_string(), sum.clone()))
            .collect(),
        blocked: s.blocked,
    };
    serde_json::to_string(&stored).ok()
}

/// Reads what [`encode_applied`] wrote: what was applied and whether it is blocked.
fn decode_applied(
    stored: Option<String>,
    ctx: &'static str,
) -> Result<(Option<Applied>, bool), StoreError> {
    let Some(text) = stored else {
        return Ok((None, false));
    };
    let stored: StoredApplied = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        context: ctx,
        message: e.to_string(),
    })?;
    let corrupt = |e: crate::model::VersionError| StoreError::Corrupt {
        context: ctx,
        message: e.to_string(),
    };
    let mut applied = Applied::default();
    for t in &stored.versions {
        applied.versions.insert(t.parse().map_err(corrupt)?);
    }
    for (t, sum) in &stored.repeatables {
        let key: MigrationKey = t.parse().map_err(corrupt)?;
        applied.repeatables.insert(key, sum.clone());
    }
    Ok((Some(applied), stored.blocked))
}

/// Stores `s` in the store's transaction `tx`.
pub(super) async fn upsert(
    s: &KnownState,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), StoreError> {
    let failed = encode_versions(&s.failed_versions);
    let (integer, text) = version_columns(s.current_version);
    sqlx::query(
        "INSERT INTO tenant_state (fleet, tenant, current_version, pending, failed_versions, \
             error, read_at, current_version_text, applied) \
             VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8) \
             ON CONFLICT (fleet, tenant) DO UPDATE SET current_version = excluded.current_version, \
             current_version_text = excluded.current_version_text, pending = 0, \
             failed_versions = excluded.failed_versions, error = excluded.error, \
             read_at = excluded.read_at, applied = excluded.applied",
    )
    .bind(s.fleet.clone())
    .bind(s.tenant.clone())
    .bind(integer)
    .bind(failed)
    .bind(s.error.clone())
    .bind(s.read_at)
    .bind(text)
    .bind(encode_applied(s))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(StoreError::query("storing a tenant's last-known state"))
}

/// `failed_versions` as stored: comma-separated (`3,1.2`, empty for none), as every release
/// wrote it; a JSON array of texts when a version holds a comma (a repeatable's description
/// may), since no version text starts with `[`.
fn encode_versions(versions: &[MigrationKey]) -> String {
    let texts: Vec<String> = versions.iter().map(MigrationKey::to_string).collect();
    match texts.iter().any(|t| t.contains(',')) {
        true => serde_json::to_string(&texts).unwrap_or_default(),
        false => texts.join(","),
    }
}

/// Reads what [`encode_versions`] wrote; a text that is no version is left out.
fn decode_versions(stored: &str) -> Vec<MigrationKey> {
    let texts: Vec<String> = match stored.starts_with('[') {
        true => serde_json::from_str(stored).unwrap_or_default(),
        false => stored.split(',').map(str::to_owned).collect(),
    };
    texts.iter().filter_map(|v| v.parse().ok()).collect()
}

/// Tenants of a fleet whose last-known states are alike (their `tenant` is empty): what
/// the store counts in one aggregate query, for them to be classified once per group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownGroup {
    /// The state they share (an unreachable one's error is empty).
    pub(crate) state: KnownState,
    /// How many tenants.
    pub(crate) count: u32,
    /// The oldest of their readings, Unix ms.
    pub(crate) oldest_read_at: i64,
}

/// Tenant ids per statement when reading or deleting by id (below every driver's limit on
/// bound parameters).
const IDS_PER_STATEMENT: usize = 500;

const COLUMNS: &str =
    "tenant, current_version, failed_versions, error, read_at, current_version_text, applied";

/// `current_version` as stored, the one conversion to the columns (the inverse of
/// [`stored_version`]): `(current_version, current_version_text)`, the integer only for an
/// integer version (as every release before dotted versions wrote it, so an older replica
/// sharing the store still reads it), the text for every version. Both columns stay: dropping one would rebuild the
/// table on SQLite for no reader's gain.
fn version_columns(v: Option<Version>) -> (Option<i64>, Option<String>) {
    (v.and_then(|v| v.as_i64()), v.map(|v| v.to_string()))
}

/// The version stored as `text` (since the control store's schema 4) or else as `integer`
/// (a row written before it); the inverse of [`version_columns`].
fn stored_version(
    integer: Option<i64>,
    text: Option<String>,
    ctx: &'static str,
) -> Result<Option<Version>, StoreError> {
    match text {
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|e: crate::model::VersionError| StoreError::Corrupt {
                context: ctx,
                message: e.to_string(),
            }),
        None => Ok(integer.map(Version::from)),
    }
}

fn decode(
    row: &sqlx::any::AnyRow,
    fleet: &str,
    ctx: &'static str,
) -> Result<KnownState, StoreError> {
    let failed: String = get(row, 2, ctx)?;
    let (applied, blocked) = decode_applied(get(row, 6, ctx)?, ctx)?;
    Ok(KnownState {
        fleet: fleet.to_owned(),
        tenant: get(row, 0, ctx)?,
        applied,
        current_version: stored_version(get(row, 1, ctx)?, get(row, 5, ctx)?, ctx)?,
        failed_versions: decode_versions(&failed),
        blocked,
        error: get(row, 3, ctx)?,
        read_at: get(row, 4, ctx)?,
    })
}

/// `$first, $first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// The last-known state of every tenant of `fleet` that was ever read.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it cannot be read.
    pub(crate) async fn known_states(&self, fleet: &str) -> Result<Vec<KnownState>, StoreError> {
        const CTX: &str = "reading last-known tenant states";
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tenant_state WHERE fleet = $1"
        ))
        .bind(fleet)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        rows.iter().map(|row| decode(row, fleet, CTX)).collect()
    }

    /// The last-known state of the given tenants of `fleet` (those ever read), in no order.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it cannot be read.
    pub(crate) async fn known_states_of(
        &self,
        fleet: &str,
        tenants: &[&str],
    ) -> Result<Vec<KnownState>, StoreError> {
        const CTX: &str = "reading last-known tenant states";
        let mut out = Vec::with_capacity(tenants.len());
        for chunk in tenants.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {COLUMNS} FROM tenant_state WHERE fleet = $1 AND tenant IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(fleet);
            for t in chunk {
                q = q.bind(*t);
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(CTX))?;
            for row in &rows {
                out.push(decode(row, fleet, CTX)?);
            }
        }
        Ok(out)
    }

    /// The fleet's last-known states grouped by the store in one aggregate query: alike
    /// states are one group, so the cost of classifying them ([`KnownState::classify`])
    /// grows with the kinds of states, not with the tenants. Counts every stored tenant of
    /// `fleet`, so it answers for the whole fleet once [`Store::forget_unregistered`] ran.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it cannot be read.
    pub(crate) async fn known_groups(&self, fleet: &str) -> Result<Vec<KnownGroup>, StoreError> {
        const CTX: &str = "counting last-known tenant states";
        let rows = sqlx::query(
            "SELECT current_version, current_version_text, failed_versions, applied, \
             CASE WHEN error IS NULL THEN 0 ELSE 1 END, COUNT(*), MIN(read_at) \
             FROM tenant_state WHERE fleet = $1 GROUP BY 1, 2, 3, 4, 5",
        )
        .bind(fleet)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        let mut groups = Vec::with_capacity(rows.len());
        for row in &rows {
            let failed: String = get(row, 2, CTX)?;
            let (applied, blocked) = decode_applied(get(row, 3, CTX)?, CTX)?;
            let unreachable = get::<i64>(row, 4, CTX)? != 0;
            groups.push(KnownGroup {
                state: KnownState {
                    fleet: fleet.to_owned(),
                    tenant: String::new(),
                    applied,
                    current_version: stored_version(get(row, 0, CTX)?, get(row, 1, CTX)?, CTX)?,
                    failed_versions: decode_versions(&failed),
                    blocked,
                    error: unreachable.then(String::new),
                    read_at: get(row, 6, CTX)?,
                },
                count: get::<i64>(row, 5, CTX)? as u32,
                oldest_read_at: get(row, 6, CTX)?,
            });
        }
        Ok(groups)
    }

    /// Deletes the last-known state of every tenant of a fleet in `registered` (this
    /// daemon's fleets) that is not in that fleet's list. Run at start, so that
    /// [`Store::known_groups`] counts registered tenants only. Returns how many went.
    ///
    /// Fleets not in `registered` are left alone: another configuration may share this
    /// store and serve them, so a daemon forgets only what its own fleets held (issue 32,
    /// item 2). A fleet removed from the configuration keeps its rows until it comes back.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses it.
    pub(crate) async fn forget_unregistered(
        &self,
        registered: &HashMap<&str, HashSet<&str>>,
    ) -> Result<u64, StoreError> {
        const CTX: &str = "forgetting tenants no longer registered";
        let rows = sqlx::query("SELECT fleet, tenant FROM tenant_state")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        let mut gone: HashMap<String, Vec<String>> = HashMap::new();
        for row in &rows {
            let fleet: String = get(row, 0, CTX)?;
            let tenant: String = get(row, 1, CTX)?;
            let kept = registered
                .get(fleet.as_str())
                .is_none_or(|tenants| tenants.contains(tenant.as_str()));
            if !kept {
                gone.entry(fleet).or_default().push(tenant);
            }
        }
        let mut deleted = 0;
        for (fleet, tenants) in &gone {
            for chunk in tenants.chunks(IDS_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM tenant_state WHERE fleet = $1 AND tenant IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(fleet);
                for t in chunk {
                    q = q.bind(t);
                }
                let done = q
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::query(CTX))?;
                deleted += done.rows_affected();
            }
        }
        Ok(deleted)
    }

    /// Stores the last-known state of tenants read outside a rollout (a refresh, a verify).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses it.
    pub(crate) async fn put_known(&self, states: &[KnownState]) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("storing last-known states"))?;
        for s in states {
            upsert(s, &mut tx).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("storing last-known states"))
    }
}
