//! Tenants registered through the API, kept across restarts.

use std::collections::BTreeMap;

use super::{Store, StoreError, get, now_ms};

/// A tenant as `Fleet.RegisterTenant` stored it.
#[derive(Clone)]
pub(crate) struct RegisteredTenant {
    pub(crate) fleet: String,
    pub(crate) tenant: String,
    /// Secret.
    pub(crate) dsn: String,
    pub(crate) schema: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
}

impl Store {
    /// Stores `t` and an audit entry naming `caller`, in one transaction; false (and
    /// nothing written) when the fleet has a registered tenant with that id already.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn register_tenant(
        &self,
        t: &RegisteredTenant,
        caller: &str,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "registering a tenant";
        let labels = serde_json::to_string(&t.labels).map_err(StoreError::corrupt(CTX))?;
        let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
        let inserted = sqlx::query(
            "INSERT INTO registered_tenants \
             (fleet, tenant, dsn, schema_name, labels, registered_by, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (fleet, tenant) DO NOTHING",
        )
        .bind(&t.fleet)
        .bind(&t.tenant)
        .bind(&t.dsn)
        .bind(&t.schema)
        .bind(&labels)
        .bind(caller)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(CTX))?
        .rows_affected()
            == 1;
        if inserted {
            bump_generation(&mut tx, CTX).await?;
            audit(
                &mut tx,
                "avocet.v1.Fleet/RegisterTenant",
                caller,
                &t.fleet,
                &t.tenant,
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::query(CTX))?;
        Ok(inserted)
    }

    /// Deletes the registered tenant and its last-known state, with an audit entry; false
    /// when there was none.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn deregister_tenant(
        &self,
        fleet: &str,
        tenant: &str,
        caller: &str,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "deregistering a tenant";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
        let deleted =
            sqlx::query("DELETE FROM registered_tenants WHERE fleet = $1 AND tenant = $2")
                .bind(fleet)
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CTX))?
                .rows_affected()
                == 1;
        if deleted {
            bump_generation(&mut tx, CTX).await?;
            sqlx::query("DELETE FROM tenant_state WHERE fleet = $1 AND tenant = $2")
                .bind(fleet)
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CTX))?;
            audit(
                &mut tx,
                "avocet.v1.Fleet/DeregisterTenant",
                caller,
                fleet,
                tenant,
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::query(CTX))?;
        Ok(deleted)
    }

    /// Every registered tenant, by fleet and id.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails; [`StoreError::Corrupt`] for labels that
    /// are not a JSON object of strings.
    pub(crate) async fn registered_tenants(&self) -> Result<Vec<RegisteredTenant>, StoreError> {
        const CTX: &str = "reading registered tenants";
        let rows = sqlx::query(
            "SELECT fleet, tenant, dsn, schema_name, labels FROM registered_tenants \
             ORDER BY fleet, registered_at, tenant",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        rows.iter()
            .map(|row| {
                let labels: String = get(row, 4, CTX)?;
                Ok(RegisteredTenant {
                    fleet: get(row, 0, CTX)?,
                    tenant: get(row, 1, CTX)?,
                    dsn: get(row, 2, CTX)?,
                    schema: get(row, 3, CTX)?,
                    labels: serde_json::from_str(&labels).map_err(StoreError::corrupt(CTX))?,
                })
            })
            .collect()
    }
}

impl Store {
    /// How many times the registered tenants changed: a replica reads them again only when
    /// this moved since it last did.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails.
    pub(crate) async fn registry_generation(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT generation FROM registry_generation WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map(Option::unwrap_or_default)
            .map_err(StoreError::query("reading the registry's generation"))
    }
}

/// Counts one change of the registered tenants, in the transaction that makes it.
async fn bump_generation(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    context: &'static str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE registry_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(StoreError::query(context))
}

/// An audit entry of a tenant registration or removal; it belongs to no rollout (empty id).
async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    method: &str,
    caller: &str,
    fleet: &str,
    tenant: &str,
) -> Result<(), StoreError> {
    let detail = serde_json::json!({ "fleet": fleet, "tenant": tenant }).to_string();
    super::rollouts::insert_audit(tx, "", now_ms(), method, caller, &detail).await
}
