//! Reading many tenants' history tables concurrently, for Plan, Verify and Status.

use std::sync::Arc;

use futures::{StreamExt, stream};

use crate::{
    dialect::{self, DbError, HistoryRecord},
    fleet::{Registry, Tenant},
};

/// Each tenant's history (or why it could not be read), in the order given, reading at
/// most `concurrency` tenants at once within the global connection budget.
pub(super) async fn histories(
    registry: &Registry,
    tenants: Vec<Arc<Tenant>>,
    concurrency: usize,
) -> Vec<(Arc<Tenant>, Result<Vec<HistoryRecord>, DbError>)> {
    stream::iter(tenants)
        .map(|tenant| async move {
            let _budget = registry.connections(1).await;
            let result = dialect::read_history(tenant.db.as_ref()).await;
            (tenant, result)
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
}
