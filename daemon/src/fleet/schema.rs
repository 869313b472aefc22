//! A tenant's schema read for a census: its history and its canonical model on one pooled
//! session, within the budget.

use super::Tenant;
use crate::{
    dialect::{DbError, connection_lost},
    model::{HistoryRecord, SchemaModel},
};

impl Tenant {
    /// The tenant's history and its schema as the canonical model, read one after the
    /// other on one pooled session within a ticket of its own (two requests). Creates
    /// nothing: a SQLite file not created yet is an empty history and an empty schema. A
    /// pooled session that turns out to be broken is replaced once.
    ///
    /// # Errors
    /// The connection error when the tenant is unreachable; [`DbError::Query`] when a read
    /// fails.
    pub(crate) async fn read_schema(&self) -> Result<(Vec<HistoryRecord>, SchemaModel), DbError> {
        if self.db.not_created() {
            return Ok((Vec::new(), SchemaModel::default()));
        }
        let _ticket = self.admit(1).await;
        let mut retried = false;
        loop {
            let mut session = self.session().await?;
            let read = match session.session().read_history().await {
                Ok(history) => match session.session().introspect().await {
                    Ok(model) => Ok((history.records().unwrap_or_default(), model)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match read {
                Ok(read) => return Ok(read),
                Err(DbError::Query { source, .. }) if !retried && connection_lost(&source) => {
                    session.close().await;
                    retried = true;
                }
                Err(e) => {
                    session.close().await;
                    return Err(e);
                }
            }
        }
    }
}
