//! Fleet schema census in the control store: the expected schema of each version of a
//! fleet's set, recorded when the first tenant reached it (`schema_expected`), and each
//! tenant's last census (`schema_census`). Versions are stored as text, `''` for none.

use super::{Store, StoreError};

/// The expected schema of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedSchema {
    /// The version's text; empty for none.
    pub(crate) version: String,
    /// Hex SHA-256 of the canonical model.
    pub(crate) fingerprint: String,
    /// The canonical model as JSON.
    pub(crate) model: String,
    /// The tenant that set it.
    pub(crate) tenant: String,
    /// When, ms since the epoch.
    pub(crate) at_ms: i64,
}

/// One tenant's last census.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CensusRow {
    /// The tenant.
    pub(crate) tenant: String,
    /// Its version's text then; empty for none.
    pub(crate) version: String,
    /// Its fingerprint then.
    pub(crate) fingerprint: String,
    /// True when it was in a drift class.
    pub(crate) drifted: bool,
    /// A digest of the history it was read with (what was applied, and each checksum).
    pub(crate) history: String,
    /// When, ms since the epoch.
    pub(crate) at_ms: i64,
}

impl Store {
    /// Records `expected` as the schema of its version of `fleet`'s set `digest` unless one
    /// is recorded already, and returns the one recorded (the first tenant's).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be written or read.
    pub(crate) async fn record_expected(
        &self,
        fleet: &str,
        digest: &str,
        expected: &ExpectedSchema,
    ) -> Result<ExpectedSchema, StoreError> {
        let ctx = "recording an expected schema";
        sqlx::query(
            "INSERT INTO schema_expected \
             (fleet, set_digest, version, fingerprint, model, tenant, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (fleet, set_digest, version) DO NOTHING",
        )
        .bind(fleet.to_owned())
        .bind(digest.to_owned())
        .bind(expected.version.clone())
        .bind(expected.fingerprint.clone())
        .bind(expected.model.clone())
        .bind(expected.tenant.clone())
        .bind(expected.at_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(ctx))?;
        let all = self.expected_schemas(fleet, digest).await?;
        Ok(all
            .into_iter()
            .find(|e| e.version == expected.version)
            .unwrap_or_else(|| expected.clone()))
    }

    /// Every expected schema recorded for `fleet`'s set `digest`.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn expected_schemas(
        &self,
        fleet: &str,
        digest: &str,
    ) -> Result<Vec<ExpectedSchema>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT version, fingerprint, model, tenant, at_ms FROM schema_expected \
             WHERE fleet = $1 AND set_digest = $2",
        )
        .bind(fleet.to_owned())
        .bind(digest.to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("reading expected schemas"))?;
        Ok(rows
            .into_iter()
            .map(
                |(version, fingerprint, model, tenant, at_ms)| ExpectedSchema {
                    version,
                    fingerprint,
                    model,
                    tenant,
                    at_ms,
                },
            )
            .collect())
    }

    /// Keeps `rows` as the last census of their tenants of `fleet`, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be written.
    pub(crate) async fn put_census(
        &self,
        fleet: &str,
        rows: &[CensusRow],
    ) -> Result<(), StoreError> {
        let ctx = "storing census results";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(ctx))?;
        // In tenant order, as the event writer's batches take them: two transactions
        // upserting the same tenants never wait on each other in a cycle.
        let mut sorted: Vec<&CensusRow> = rows.iter().collect();
        sorted.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        for r in sorted {
            upsert(fleet, r, &mut tx).await?;
        }
        tx.commit().await.map_err(StoreError::query(ctx))
    }

    /// Every tenant's last census in `fleet`.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store cannot be read.
    pub(crate) async fn census_rows(&self, fleet: &str) -> Result<Vec<CensusRow>, StoreError> {
        let rows: Vec<(String, String, String, i64, String, i64)> = sqlx::query_as(
            "SELECT tenant, version, fingerprint, drifted, history, at_ms FROM schema_census \
             WHERE fleet = $1",
        )
        .bind(fleet.to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("reading census results"))?;
        Ok(rows
            .into_iter()
            .map(
                |(tenant, version, fingerprint, drifted, history, at_ms)| CensusRow {
                    tenant,
                    version,
                    fingerprint,
                    drifted: drifted != 0,
                    history,
                    at_ms,
                },
            )
            .collect())
    }
}

/// Keeps `row` as the last census of its tenant of `fleet`, within `tx`.
///
/// # Errors
/// [`StoreError::Query`] when the store cannot be written.
pub(super) async fn upsert(
    fleet: &str,
    row: &CensusRow,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO schema_census \
         (fleet, tenant, version, fingerprint, drifted, history, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (fleet, tenant) DO UPDATE SET version = excluded.version, \
         fingerprint = excluded.fingerprint, drifted = excluded.drifted, \
         history = excluded.history, at_ms = excluded.at_ms",
    )
    .bind(fleet.to_owned())
    .bind(row.tenant.clone())
    .bind(row.version.clone())
    .bind(row.fingerprint.clone())
    .bind(i64::from(row.drifted))
    .bind(row.history.clone())
    .bind(row.at_ms)
    .execute(&mut **tx)
    .await
    .map(drop)
    .map_err(StoreError::query("storing census results"))
}
