//! Each tenant's last-known state: what its history table said when the engine last read
//! or changed it. `Status` answers from it without touching any tenant.

use super::{Store, StoreError, get};

/// What a tenant's history table said when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownState {
    pub(crate) fleet: String,
    pub(crate) tenant: String,
    /// Highest applied version.
    pub(crate) current_version: Option<i64>,
    /// Versions of the set not applied.
    pub(crate) pending: u32,
    /// Versions recorded `failed` or `running`.
    pub(crate) failed_versions: Vec<i64>,
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
        let failed: Vec<String> = self.failed_versions.iter().map(i64::to_string).collect();
        sqlx::query(
            "INSERT INTO tenant_state (fleet, tenant, current_version, pending, failed_versions, \
             error, read_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (fleet, tenant) DO UPDATE SET current_version = excluded.current_version, \
             pending = excluded.pending, failed_versions = excluded.failed_versions, \
             error = excluded.error, read_at = excluded.read_at",
        )
        .bind(self.fleet.clone())
        .bind(self.tenant.clone())
        .bind(self.current_version)
        .bind(i64::from(self.pending))
        .bind(failed.join(","))
        .bind(self.error.clone())
        .bind(self.read_at)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(StoreError::query("storing a tenant's last-known state"))
    }
}

impl Store {
    /// The last-known state of every tenant of `fleet` that was ever read.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it cannot be read.
    pub(crate) async fn known_states(&self, fleet: &str) -> Result<Vec<KnownState>, StoreError> {
        const CTX: &str = "reading last-known tenant states";
        let rows = sqlx::query(
            "SELECT tenant, current_version, pending, failed_versions, error, read_at \
             FROM tenant_state WHERE fleet = $1",
        )
        .bind(fleet)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        rows.iter()
            .map(|row| {
                let failed: String = get(row, 3, CTX)?;
                Ok(KnownState {
                    fleet: fleet.to_owned(),
                    tenant: get(row, 0, CTX)?,
                    current_version: get(row, 1, CTX)?,
                    pending: get::<i64>(row, 2, CTX)? as u32,
                    failed_versions: failed.split(',').filter_map(|v| v.parse().ok()).collect(),
                    error: get(row, 4, CTX)?,
                    read_at: get(row, 5, CTX)?,
                })
            })
            .collect()
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
