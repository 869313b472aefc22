//! Rollouts, their tenants' work items and audit entries.

use sqlx::any::AnyRow;

use super::{Store, StoreError, get, now_ms};
use crate::model::{AuditEntry, RolloutRecord, RolloutSpec, RolloutState, TenantWork, WorkState};

/// Work items inserted per statement when a rollout is created.
const INSERT_CHUNK: usize = 500;

/// A rollout to create.
pub(crate) struct NewRollout<'a> {
    pub(crate) id: &'a str,
    pub(crate) spec: &'a RolloutSpec,
    /// The request that started it, as JSON, for audit.
    pub(crate) request_json: &'a str,
    pub(crate) created_by: &'a str,
    pub(crate) method: &'a str,
    pub(crate) waves: u32,
    /// Every tenant, in order, with its wave.
    pub(crate) works: &'a [TenantWork],
}

/// Which rollouts [`Store::list_rollouts`] returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct RolloutFilter {
    pub(crate) fleet: Option<String>,
    pub(crate) state: Option<RolloutState>,
    /// At most this many.
    pub(crate) limit: u32,
    /// Only rollouts created before this (created_at, id) position: the previous page's last.
    pub(crate) before: Option<(i64, String)>,
}

pub(super) const COLUMNS: &str = "id, spec, state, created_by, created_at, finished_at, tenant_count, \
                       succeeded, failed, skipped, migrations_run, last_seq, waves, dry_run";

pub(super) fn record(row: &AnyRow) -> Result<RolloutRecord, StoreError> {
    const CTX: &str = "reading a rollout";
    let spec: String = get(row, 1, CTX)?;
    let state: String = get(row, 2, CTX)?;
    let int = |i: usize| get::<i64>(row, i, CTX);
    let mut spec: RolloutSpec =
        serde_json::from_str(&spec).map_err(StoreError::corrupt("a rollout's spec"))?;
    // The column says it (since the store's schema 6), whatever the spec's JSON holds.
    spec.dry_run = int(13)? != 0;
    Ok(RolloutRecord {
        id: get(row, 0, CTX)?,
        spec,
        state: state.parse().map_err(|message| StoreError::Corrupt {
            context: "a rollout's state",
            message,
        })?,
        created_by: get(row, 3, CTX)?,
        created_at_unix_ms: int(4)?,
        finished_at_unix_ms: get(row, 5, CTX)?,
        tenant_count: int(6)? as u32,
        succeeded: int(7)? as u32,
        failed: int(8)? as u32,
        skipped: int(9)? as u32,
        migrations_run: int(10)? as u32,
        last_seq: int(11)? as u64,
        waves: int(12)? as u32,
        audit: Vec::new(),
    })
}

impl Store {
    /// Creates a rollout, its work items and its first audit entry, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the writes; nothing is kept then.
    pub(crate) async fn create_rollout(&self, new: &NewRollout<'_>) -> Result<(), StoreError> {
        let q = StoreError::query("creating a rollout");
        let spec =
            serde_json::to_string(new.spec).map_err(StoreError::corrupt("a rollout's spec"))?;
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(q)?;
        sqlx::query(
            "INSERT INTO rollouts (id, fleet, direction, spec, request, state, created_by, \
             created_at, tenant_count, waves, dry_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(new.id)
        .bind(&new.spec.fleet)
        .bind(new.spec.op.direction().as_str())
        .bind(spec)
        .bind(new.request_json)
        .bind(RolloutState::Pending.as_str())
        .bind(new.created_by)
        .bind(now)
        .bind(new.works.len() as i64)
        .bind(new.waves as i64)
        .bind(i64::from(new.spec.dry_run))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("creating a rollout"))?;
        for chunk in new.works.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO rollout_tenants (rollout_id, position, tenant, wave, state, \
                 updated_at) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 6;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                ));
            }
            let mut query = sqlx::query(&sql);
            for w in chunk {
                query = query
                    .bind(new.id)
                    .bind(w.position as i64)
                    .bind(w.tenant.clone())
                    .bind(w.wave as i64)
                    .bind(w.state.as_str())
                    .bind(now);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("creating a rollout's tenants"))?;
        }
        insert_audit(
            &mut tx,
            new.id,
            now,
            new.method,
            new.created_by,
            new.request_json,
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("creating a rollout"))
    }

    /// The rollout `id` with its audit entries, if it exists.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`] when it cannot be read.
    pub(crate) async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rollouts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a rollout"))?;
        let Some(row) = row else { return Ok(None) };
        let mut rec = record(&row)?;
        let rows =
            sqlx::query("SELECT at, method, caller FROM audit WHERE rollout_id = $1 ORDER BY at")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("reading a rollout's audit"))?;
        const CTX: &str = "reading a rollout's audit";
        for row in rows {
            rec.audit.push(AuditEntry {
                at_unix_ms: get(&row, 0, CTX)?,
                method: get(&row, 1, CTX)?,
                caller: get(&row, 2, CTX)?,
            });
        }
        Ok(Some(rec))
    }

    /// Rollouts, newest first, as `filter` says (without their audit entries).
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`] when they cannot be read.
    pub(crate) async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
    ) -> Result<Vec<RolloutRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM rollouts WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.fleet.is_some() {
            sql.push_str(&format!(" AND fleet = {}", next()));
        }
        if filter.state.is_some() {
            sql.push_str(&format!(" AND state = {}", next()));
        }
        if filter.before.is_some() {
            let (a, b, c) = (next(), next(), next());
            sql.push_str(&format!(
                " AND (created_at < {a} OR (created_at = {b} AND id < {c}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {}",
            next()
        ));
        let mut query = sqlx::query(&sql);
        if let Some(fleet) = &filter.fleet {
            query = query.bind(fleet.clone());
        }
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        if let Some((at, id)) = &filter.before {
            query = query.bind(*at).bind(*at).bind(id.clone());
        }
        let rows = query
            .bind(filter.limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("listing rollouts"))?;
        rows.iter().map(record).collect()
    }

    /// The work items of rollout `id`, in order.
    ///
    /// # Errors
    /// [`StoreError::Query`] when they cannot be read.
    pub(crate) async fn works(&self, id: &str) -> Result<Vec<TenantWork>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, position, wave, state, attempts, last_error FROM rollout_tenants \
             WHERE rollout_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("reading a rollout's tenants"))?;
        const CTX: &str = "reading a rollout's tenants";
        rows.iter()
            .map(|row| {
                let state: String = get(row, 3, CTX)?;
                Ok(TenantWork {
                    tenant: get(row, 0, CTX)?,
                    position: get::<i64>(row, 1, CTX)? as u32,
                    wave: get::<i64>(row, 2, CTX)? as u32,
                    state: WorkState::parse(&state),
                    attempts: get::<i64>(row, 4, CTX)? as u32,
                    last_error: get(row, 5, CTX)?,
                })
            })
            .collect()
    }

    /// Records a call that changed rollout `id` (pause, resume, cancel).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn audit(
        &self,
        id: &str,
        method: &str,
        caller: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("writing the audit"))?;
        insert_audit(&mut tx, id, now_ms(), method, caller, detail).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("writing the audit"))
    }
}

pub(super) async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    at: i64,
    method: &str,
    caller: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (rollout_id, at, method, caller, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(at)
    .bind(method)
    .bind(caller)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(StoreError::query("writing the audit"))
}
