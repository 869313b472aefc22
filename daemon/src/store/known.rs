//! Each tenant's last-known state: what its history table said when the engine last read
//! or changed it. `Status` answers from it without touching any tenant.

use std::collections::{HashMap, HashSet};

use super::{Store, StoreError, get};
use crate::model::Version;

/// What a tenant's history table said when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownState {
    pub(crate) fleet: String,
    pub(crate) tenant: String,
    /// Highest applied version.
    pub(crate) current_version: Option<crate::model::Version>,
    /// Versions of the set not applied.
    pub(crate) pending: u32,
    /// Versions recorded `failed` or `running`.
    pub(crate) failed_versions: Vec<crate::model::Version>,
    /// Why it could not be read, when it could not.
    pub(crate) error: Option<String>,
    /// When, Unix ms.
    pub(crate) read_at: i64,
}

impl KnownState {
    pub(super) async fn upsert(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        let failed = encode_versions(&self.failed_versions);
        sqlx::query(
            "INSERT INTO tenant_state (fleet, tenant, current_version, pending, failed_versions, \
             error, read_at, current_version_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (fleet, tenant) DO UPDATE SET current_version = excluded.current_version, \
             current_version_text = excluded.current_version_text, pending = excluded.pending, failed_versions = excluded.failed_versions, \
             error = excluded.error, read_at = excluded.read_at",
        )
        .bind(self.fleet.clone())
        .bind(self.tenant.clone())
        .bind(self.current_version.and_then(|v| v.as_i64()))
        .bind(i64::from(self.pending))
        .bind(failed)
        .bind(self.error.clone())
        .bind(self.read_at)
        .bind(self.current_version.map(|v| v.to_string()))
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(StoreError::query("storing a tenant's last-known state"))
    }
}

/// `failed_versions` as stored: comma-separated (`3,1.2`, empty for none), as every release
/// wrote it; a JSON array of texts when a version holds a comma (a repeatable's description
/// may), since no version text starts with `[`.
fn encode_versions(versions: &[Version]) -> String {
    let texts: Vec<String> = versions.iter().map(Version::to_string).collect();
    match texts.iter().any(|t| t.contains(',')) {
        true => serde_json::to_string(&texts).unwrap_or_default(),
        false => texts.join(","),
    }
}

/// Reads what [`encode_versions`] wrote; a text that is no version is left out.
fn decode_versions(stored: &str) -> Vec<Version> {
    let texts: Vec<String> = match stored.starts_with('[') {
        true => serde_json::from_str(stored).unwrap_or_default(),
        false => stored.split(',').map(str::to_owned).collect(),
    };
    texts.iter().filter_map(|v| v.parse().ok()).collect()
}

/// What the last-known states of a whole fleet add up to, counted by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KnownSummary {
    /// Tenants with a reading (readable or not).
    pub(crate) read: u32,
    /// Readable tenants per highest applied version (`None`: nothing applied), ascending.
    pub(crate) versions: Vec<(Option<crate::model::Version>, u32)>,
    /// Readings that were errors.
    pub(crate) unreachable: u32,
    /// Readable tenants with a `failed` or `running` record.
    pub(crate) failed: u32,
    /// Readable tenants, none failed, with versions not applied.
    pub(crate) pending: u32,
    /// Readable tenants with nothing failed or pending.
    pub(crate) up_to_date: u32,
    /// The oldest reading, Unix ms.
    pub(crate) oldest_read_at: Option<i64>,
}

/// Tenant ids per statement when reading or deleting by id (below every driver's limit on
/// bound parameters).
const IDS_PER_STATEMENT: usize = 500;

const COLUMNS: &str =
    "tenant, current_version, pending, failed_versions, error, read_at, current_version_text";

/// The version stored as `text` (since the control store's schema 4) or else as `integer`.
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
    let failed: String = get(row, 3, ctx)?;
    Ok(KnownState {
        fleet: fleet.to_owned(),
        tenant: get(row, 0, ctx)?,
        current_version: stored_version(get(row, 1, ctx)?, get(row, 6, ctx)?, ctx)?,
        pending: get::<i64>(row, 2, ctx)? as u32,
        failed_versions: decode_versions(&failed),
        error: get(row, 4, ctx)?,
        read_at: get(row, 5, ctx)?,
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

    /// The fleet's last-known states counted in one aggregate query: the store scans the
    /// fleet's rows, nothing is decoded per tenant. Counts every stored tenant of `fleet`,
    /// so it answers for the whole fleet once [`Store::forget_unregistered`] has run.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it cannot be read.
    pub(crate) async fn known_summary(&self, fleet: &str) -> Result<KnownSummary, StoreError> {
        const CTX: &str = "counting last-known tenant states";
        let rows = sqlx::query(
            "SELECT current_version, current_version_text, \
             SUM(CASE WHEN error IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END), \
             SUM(CASE WHEN error IS NULL AND failed_versions <> '' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN error IS NULL AND failed_versions = '' AND pending > 0 \
                 THEN 1 ELSE 0 END), \
             MIN(read_at) \
             FROM tenant_state WHERE fleet = $1 GROUP BY current_version, current_version_text",
        )
        .bind(fleet)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        let mut sum = KnownSummary::default();
        for row in &rows {
            let version = stored_version(get(row, 0, CTX)?, get(row, 1, CTX)?, CTX)?;
            let count = |i| get::<i64>(row, i, CTX).map(|n| n as u32);
            let (readable, unreachable, failed, pending) =
                (count(2)?, count(3)?, count(4)?, count(5)?);
            let oldest: i64 = get(row, 6, CTX)?;
            sum.read += readable + unreachable;
            if readable > 0 {
                sum.versions.push((version, readable));
            }
            sum.unreachable += unreachable;
            sum.failed += failed;
            sum.pending += pending;
            sum.up_to_date += readable - failed - pending;
            sum.oldest_read_at = Some(sum.oldest_read_at.map_or(oldest, |o| o.min(oldest)));
        }
        // PostgreSQL sorts NULL last, SQLite first: `None` (nothing applied) goes first. A
        // version stored by an older daemon (integer only) and again since (with its text)
        // is one group.
        sum.versions.sort_unstable();
        sum.versions.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        Ok(sum)
    }

    /// Deletes the last-known state of every tenant that is no longer registered: of fleets
    /// not in `registered`, and of tenants not in their fleet's list. Run at start, so that
    /// [`Store::known_summary`] counts registered tenants only. Returns how many went.
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
                .is_some_and(|tenants| tenants.contains(tenant.as_str()));
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
            s.upsert(&mut tx).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("storing last-known states"))
    }
}
