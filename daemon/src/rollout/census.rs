//! A tenant's schema after its run (`census_on_apply`): its fingerprint kept as the
//! expected one for its version when it is the first tenant there, or compared with the
//! one kept, a difference a [`SchemaDrift`] event (a warning; the tenant succeeded). The
//! tenant's last census is kept too.

use super::RolloutCtx;
use crate::{
    fleet::Tenant,
    model::{EventKind, FingerprintOptions, SchemaDrift, SchemaModel, Version, diff_schemas},
    store::{CensusRow, ExpectedSchema, StoreError, now_ms},
};
use std::collections::HashMap;

impl RolloutCtx {
    /// The expected fingerprint of each version (its text, `""` for none) that
    /// `--require-expected-schema` binds tenants to: the one recorded at apply time for
    /// the rollout's set, else the one the last census found expected at that version.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read: the tenant fails, it is not run
    /// unbound.
    pub(super) async fn expected_fingerprints(
        &self,
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut expected: HashMap<String, String> = HashMap::new();
        for row in self.store.census_rows(&self.fleet.name).await? {
            if !row.drifted {
                expected.entry(row.version).or_insert(row.fingerprint);
            }
        }
        let digest = self.spec.set_digest.to_string();
        for e in self
            .store
            .expected_schemas(&self.fleet.name, &digest)
            .await?
        {
            expected.insert(e.version, e.fingerprint);
        }
        Ok(expected)
    }

    /// Records `model`, read on `tenant` right after its run left it at `version`. A store
    /// that fails costs the record (logged), never the tenant's outcome.
    pub(super) async fn record_schema(
        &self,
        tenant: &Tenant,
        version: Option<Version>,
        model: &SchemaModel,
    ) {
        let opts = FingerprintOptions::default();
        let version_text = version.as_ref().map(|v| v.to_string()).unwrap_or_default();
        let mine = ExpectedSchema {
            version: version_text.clone(),
            fingerprint: model.fingerprint(opts),
            model: model.canonical_json(opts),
            tenant: tenant.id.clone(),
            at_ms: now_ms(),
        };
        let digest = self.set.digest().to_string();
        let expected = match self
            .store
            .record_expected(&self.fleet.name, &digest, &mine)
            .await
        {
            Ok(expected) => expected,
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, "recording the expected schema: {e}");
                return;
            }
        };
        let drifted = expected.fingerprint != mine.fingerprint;
        if drifted {
            let mut diff = serde_json::from_str::<SchemaModel>(&expected.model)
                .map(|e| diff_schemas(&e, model))
                .unwrap_or_default();
            diff.truncate(SchemaDrift::MAX_CHANGES);
            tracing::warn!(
                tenant = %tenant.id,
                version = %version_text,
                expected_from = %expected.tenant,
                "the schema after the run differs from the version's expected one"
            );
            self.emit(EventKind::SchemaDrift(SchemaDrift {
                tenant: tenant.id.clone(),
                version,
                expected: expected.fingerprint.clone(),
                found: mine.fingerprint.clone(),
                expected_from: expected.tenant.clone(),
                diff,
            }))
            .await;
        }
        let row = CensusRow {
            tenant: tenant.id.clone(),
            version: version_text,
            fingerprint: mine.fingerprint,
            drifted,
            history: String::new(),
            at_ms: mine.at_ms,
        };
        if let Err(e) = self.store.put_census(&self.fleet.name, &[row]).await {
            tracing::warn!(tenant = %tenant.id, "keeping the tenant's census: {e}");
        }
    }
}
