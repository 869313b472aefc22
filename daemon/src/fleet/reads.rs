//! Many tenants' histories read at once, for Status, Plan and Verify. Tenants with a pool
//! of their own are read one session each; schema tenants sharing their database's pool
//! are read [`TENANTS_PER_QUERY`] at a time on one session, in two round trips for the
//! lot (issue 27: "reads batched per database").

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{StreamExt, stream};

use super::Tenant;
use crate::{dialect::DbError, model::HistoryRecord};

/// Tenants read at once by one request. The connection budget's admission is the real
/// bound (a read takes one ticket); this only bounds the reads in flight.
const READS_IN_FLIGHT: usize = 64;

/// Schema tenants of one database read by one query: a `UNION ALL` of this many tables
/// stays a few milliseconds of planning on PostgreSQL, and one query's answer stays small
/// (a light set's history is about 3 KiB per tenant).
const TENANTS_PER_QUERY: usize = 250;

/// What one read answers for one tenant.
type Read = Result<Vec<HistoryRecord>, DbError>;

/// Each tenant's history (or why it could not be read), in the order given. Up to
/// [`READS_IN_FLIGHT`] reads run at once within the connection budget; the schema tenants
/// of one shared pool are read together ([`TENANTS_PER_QUERY`] per query), and alone when
/// a query cannot read them (a table of an older layout among them, a session that broke).
/// Past `timeout`, a read is a [`DbError::Deadline`] for each of its tenants.
pub(crate) async fn read_histories(
    tenants: &[Arc<Tenant>],
    timeout: Option<Duration>,
) -> Vec<Read> {
    let groups = groups(tenants);
    let mut out: Vec<Option<Read>> = (0..tenants.len()).map(|_| None).collect();
    let mut reads = stream::iter(groups)
        .map(|group| async move {
            let reads = within(timeout, group.len(), read_group(tenants, &group)).await;
            group.into_iter().zip(reads)
        })
        .buffer_unordered(READS_IN_FLIGHT);
    while let Some(done) = reads.next().await {
        for (i, read) in done {
            out[i] = Some(read);
        }
    }
    out.into_iter()
        .map(|r| r.expect("every tenant is in one group"))
        .collect()
}

/// The tenants' positions in read order: one group per tenant with a pool of its own,
/// and up to [`TENANTS_PER_QUERY`] of a shared pool's schema tenants per group.
fn groups(tenants: &[Arc<Tenant>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_pool: HashMap<*const super::PoolSlot, usize> = HashMap::new();
    for (i, tenant) in tenants.iter().enumerate() {
        if !tenant.pool.shared {
            groups.push(vec![i]);
            continue;
        }
        let key = Arc::as_ptr(&tenant.pool);
        let open = by_pool
            .get(&key)
            .copied()
            .filter(|&g| groups[g].len() < TENANTS_PER_QUERY);
        let g = open.unwrap_or_else(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        by_pool.insert(key, g);
        groups[g].push(i);
    }
    groups
}

/// `read`'s answer, or a [`DbError::Deadline`] for each of its `n` tenants past `timeout`.
async fn within(
    timeout: Option<Duration>,
    n: usize,
    read: impl Future<Output = Vec<Read>>,
) -> Vec<Read> {
    let Some(timeout) = timeout else {
        return read.await;
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(reads) => reads,
        Err(_) => (0..n)
            .map(|_| {
                Err(DbError::Deadline {
                    timeout_ms: timeout.as_millis() as u64,
                })
            })
            .collect(),
    }
}

/// The histories of the tenants at `group` (one alone, or schema tenants of one pool).
async fn read_group(tenants: &[Arc<Tenant>], group: &[usize]) -> Vec<Read> {
    let members: Vec<&Arc<Tenant>> = group.iter().map(|&i| &tenants[i]).collect();
    if let [tenant] = members.as_slice() {
        return vec![tenant.read_history().await];
    }
    if let Some(reads) = read_together(&members).await {
        return reads;
    }
    // Alone, as any tenant is read: each reports its own error.
    let mut reads = Vec::with_capacity(members.len());
    for tenant in members {
        reads.push(tenant.read_history().await);
    }
    reads
}

/// The histories of `members`, schema tenants of one shared pool, in one query on one
/// session within one ticket; `None` when they must be read alone (the query cannot read
/// them, or the session failed: closed here, so the next checkout opens a fresh one).
async fn read_together(members: &[&Arc<Tenant>]) -> Option<Vec<Read>> {
    let first = members.first()?;
    let _ticket = first.admit(1).await;
    let mut session = first.session().await.ok()?;
    let mut identities = Vec::with_capacity(members.len());
    for tenant in members {
        match tenant.db.identity(session.session()).await {
            Ok(identity) => identities.push(identity),
            Err(e) => {
                tracing::debug!(tenant = %tenant.id, "reading schema tenants together: {e}");
                session.close().await;
                return None;
            }
        }
    }
    match session.session().read_histories(&identities).await {
        Ok(Some(histories)) => Some(
            histories
                .into_iter()
                .map(|h| Ok(h.records().unwrap_or_default()))
                .collect(),
        ),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!("reading schema tenants together: {e}");
            session.close().await;
            None
        }
    }
}
