//! Backups of tenants (table `backups`): recorded when taken or failed, listed newest first,
//! deleted by retention or on request.

use super::{Store, StoreError, get};
use crate::model::{BackupRecord, BackupState, Direction};

const COLUMNS: &str = "id, fleet, tenant, name, rollout_id, before_version, before_direction, \
                       version, path, bytes, sha256, started_at, finished_at, tool, \
                       tool_version, state, error";

/// Which backups a list returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct BackupFilter {
    /// Only this fleet's; every fleet's when empty.
    pub(crate) fleet: String,
    /// Only this tenant's; every tenant's when empty.
    pub(crate) tenant: String,
    /// Only the ones in this state.
    pub(crate) state: Option<BackupState>,
    /// At most this many, newest first.
    pub(crate) limit: u32,
}

impl Store {
    /// Records `b`.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn insert_backup(&self, b: &BackupRecord) -> Result<(), StoreError> {
        const CTX: &str = "recording a backup";
        let (before_version, before_direction) = match &b.before {
            Some((v, d)) => (Some(v.to_string()), Some(d.as_str().to_owned())),
            None => (None, None),
        };
        sqlx::query(&format!(
            "INSERT INTO backups ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&b.id)
        .bind(&b.fleet)
        .bind(&b.tenant)
        .bind(&b.name)
        .bind(&b.rollout_id)
        .bind(before_version)
        .bind(before_direction)
        // The text form, empty for none, as the column always held.
        .bind(b.version.map(|v| v.to_string()).unwrap_or_default())
        .bind(&b.path)
        .bind(b.bytes as i64)
        .bind(&b.sha256)
        .bind(b.started_at_ms)
        .bind(b.finished_at_ms)
        .bind(&b.tool)
        .bind(&b.tool_version)
        .bind(b.state.as_str())
        .bind(b.error.clone())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        Ok(())
    }

    /// The backups `filter` chooses, newest first.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails; [`StoreError::Corrupt`] for a row that
    /// does not decode.
    pub(crate) async fn list_backups(
        &self,
        filter: &BackupFilter,
    ) -> Result<Vec<BackupRecord>, StoreError> {
        const CTX: &str = "listing backups";
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM backups WHERE ($1 = '' OR fleet = $2) \
             AND ($3 = '' OR tenant = $4) AND ($5 = '' OR state = $6) \
             ORDER BY started_at DESC, id DESC LIMIT $7"
        ))
        .bind(&filter.fleet)
        .bind(&filter.fleet)
        .bind(&filter.tenant)
        .bind(&filter.tenant)
        .bind(filter.state.map_or("", BackupState::as_str))
        .bind(filter.state.map_or("", BackupState::as_str))
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        rows.iter().map(decode).collect()
    }

    /// The backup `id`; `None` when there is none.
    ///
    /// # Errors
    /// As [`Store::list_backups`].
    pub(crate) async fn get_backup(&self, id: &str) -> Result<Option<BackupRecord>, StoreError> {
        const CTX: &str = "reading a backup";
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM backups WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        row.as_ref().map(decode).transpose()
    }

    /// Deletes the record of backup `id`; false when there was none.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the store refuses the write.
    pub(crate) async fn delete_backup(&self, id: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM backups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(StoreError::query("deleting a backup"))
    }

    /// The id of a rollout that is not over (pending, running or paused) whose tenants
    /// include `tenant` of `fleet`; `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails.
    pub(crate) async fn rollout_holding(
        &self,
        fleet: &str,
        tenant: &str,
    ) -> Result<Option<String>, StoreError> {
        const CTX: &str = "looking for a rollout holding a tenant";
        let row = sqlx::query(
            "SELECT r.id FROM rollouts r WHERE r.fleet = $1 \
             AND r.state IN ('pending', 'running', 'paused') AND EXISTS \
             (SELECT 1 FROM rollout_tenants t WHERE t.rollout_id = r.id AND t.tenant = $2) \
             LIMIT 1",
        )
        .bind(fleet)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        row.map(|r| get::<String>(&r, 0, CTX)).transpose()
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<BackupRecord, StoreError> {
    const CTX: &str = "reading a backup";
    let corrupt = |message: String| StoreError::Corrupt {
        context: CTX,
        message,
    };
    let state: String = get(row, 15, CTX)?;
    let before_version: Option<String> = get(row, 5, CTX)?;
    let before_direction: Option<String> = get(row, 6, CTX)?;
    let parse_error = |e: crate::model::VersionError| corrupt(e.to_string());
    let before = match (before_version, before_direction.as_deref()) {
        (Some(v), Some("down")) => Some((v.parse().map_err(parse_error)?, Direction::Down)),
        (Some(v), _) => Some((v.parse().map_err(parse_error)?, Direction::Up)),
        (None, _) => None,
    };
    let version = match get::<String>(row, 7, CTX)?.as_str() {
        "" => None,
        text => Some(text.parse().map_err(parse_error)?),
    };
    Ok(BackupRecord {
        id: get(row, 0, CTX)?,
        fleet: get(row, 1, CTX)?,
        tenant: get(row, 2, CTX)?,
        name: get(row, 3, CTX)?,
        rollout_id: get(row, 4, CTX)?,
        before,
        version,
        path: get(row, 8, CTX)?,
        bytes: get::<i64>(row, 9, CTX)?.max(0) as u64,
        sha256: get(row, 10, CTX)?,
        started_at_ms: get(row, 11, CTX)?,
        finished_at_ms: get(row, 12, CTX)?,
        tool: get(row, 13, CTX)?,
        tool_version: get(row, 14, CTX)?,
        state: BackupState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown backup state {state:?}")))?,
        error: get(row, 16, CTX)?,
    })
}
