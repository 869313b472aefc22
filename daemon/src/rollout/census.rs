//! A tenant's schema after its run (`census_on_apply`): its fingerprint kept as the
//! expected one for its version when it is the first tenant there, or compared with the
//! one kept, a difference a [`SchemaDrift`] event (a warning; the tenant succeeded). The
//! tenant's last census is kept too, in the event writer's batch with its end. A version's
//! expected schema is read from the store once per run, not once per tenant.

use super::RolloutCtx;
use crate::{
    fleet::Tenant,
    model::{
        EventKind, FingerprintOptions, SchemaDrift, SchemaModel, Version, diff_schemas, hash_text,
    },
    store::{CensusRow, ExpectedSchema, StoreError, Write, now_ms},
};
use std::{collections::HashMap, sync::PoisonError};

impl RolloutCtx {
    /// The expected fingerprint of each version (its text, `""` for none) that
    /// `--require-expected-schema` binds tenants to: the one recorded at apply time for
    /// the rollout's set, else the one the last census before this run found expected at
    /// that version (read once per run: the census rows of a fleet of 10,000 tenants are
    /// not read again for each of them).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read: the tenant fails, it is not run
    /// unbound.
    pub(super) async fn expected_fingerprints(
        &self,
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut expected = self
            .census_expected
            .get_or_try_init(async || {
                let mut found: HashMap<String, String> = HashMap::new();
                for row in self.store.census_rows(&self.fleet.name).await? {
                    if !row.drifted {
                        found.entry(row.version).or_insert(row.fingerprint);
                    }
                }
                Ok::<_, StoreError>(found)
            })
            .await?
            .clone();
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
    /// that fails to record the version's expected schema costs that record (logged), never
    /// the tenant's outcome; the tenant's census row goes with its end through the event
    /// writer, which retries until the store answers, as for the end itself.
    pub(super) async fn record_schema(
        &self,
        tenant: &Tenant,
        version: Option<Version>,
        model: &SchemaModel,
    ) {
        let opts = FingerprintOptions::default();
        let version_text = version.as_ref().map(|v| v.to_string()).unwrap_or_default();
        // The canonical text once: the fingerprint is its hash.
        let canonical = model.canonical_json(opts);
        let mine = ExpectedSchema {
            version: version_text.clone(),
            fingerprint: hash_text(&canonical),
            model: canonical,
            tenant: tenant.id.clone(),
            at_ms: now_ms(),
        };
        let expected = match self.expected_schema(tenant, &mine).await {
            Some(expected) => expected,
            None => return,
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
        // With the tenant's end, in the writer's next batch: no commit of its own.
        self.writer
            .send(Write::Census {
                fleet: self.fleet.name.clone(),
                row,
            })
            .await;
    }

    /// The expected schema of `mine`'s version: the one this run already knows, else the
    /// one in the store, recorded as `mine` when there is none (the first tenant there
    /// sets it; a store's row never changes once written, so the one known here stays
    /// right). `None` when the store fails (logged): the record is lost, never the
    /// tenant's outcome.
    async fn expected_schema(
        &self,
        tenant: &Tenant,
        mine: &ExpectedSchema,
    ) -> Option<ExpectedSchema> {
        let known = self
            .expected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&mine.version)
            .cloned();
        if known.is_some() {
            return known;
        }
        let digest = self.set.digest().to_string();
        match self
            .store
            .record_expected(&self.fleet.name, &digest, mine)
            .await
        {
            Ok(expected) => {
                let mut known = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
                known.insert(mine.version.clone(), expected.clone());
                Some(expected)
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, "recording the expected schema: {e}");
                None
            }
        }
    }
}
