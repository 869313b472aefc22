//! The history tables of many schema tenants of one database, read on one session in two
//! round trips: the catalog first (which schemas have the table), then one `UNION ALL` of
//! their reads, each row tagged with its tenant's position. Schema-per-tenant fleets read
//! for Status, Plan and Verify this way (issue 27): the cost per tenant is a share of one
//! query, not a session checkout and a round trip.

use std::collections::{HashMap, HashSet};

use super::{
    History,
    history::{HistorySql, record_from_text},
    session::Conn,
    spec::Dialect,
};
use crate::model::HistoryRecord;

/// The history of each tenant of `places` (its schema and history SQL), in order; `None`
/// when one query cannot read them all: the dialect has no catalog query
/// ([`Dialect::tables_sql`]), the tables differ in name, or one has an older layout (its
/// newer columns are missing, so the caller reads each alone, as it can).
///
/// # Errors
/// The server's error when the catalog or a table cannot be read.
pub(super) async fn read<D: Dialect>(
    conn: &mut D::Conn,
    places: &[(&str, &HistorySql)],
) -> Result<Option<Vec<History>>, sqlx::Error> {
    let Some(&(_, first)) = places.first() else {
        return Ok(Some(Vec::new()));
    };
    if places.iter().any(|(_, sql)| sql.name != first.name) {
        return Ok(None);
    }
    let schemas: Vec<&str> = places.iter().map(|&(schema, _)| schema).collect();
    let Some(catalog) = D::tables_sql(&schemas, &first.name) else {
        return Ok(None);
    };
    let present: HashSet<String> = conn
        .text_rows(&catalog)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect();
    let reads: Vec<String> = places
        .iter()
        .enumerate()
        .filter(|(_, (schema, _))| present.contains(*schema))
        .map(|(i, (_, sql))| sql.select_tagged(&D::string(&i.to_string())))
        .collect();
    let mut found: HashMap<usize, Vec<HistoryRecord>> = HashMap::new();
    if !reads.is_empty() {
        let rows = match conn.text_rows(&reads.join("\nUNION ALL\n")).await {
            Ok(rows) => rows,
            Err(e) if first.is_missing_column(&e) || first.is_missing_table(&e) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        for mut row in rows {
            let tag = row.remove(0);
            let Some(i) = tag.and_then(|t| t.parse::<usize>().ok()) else {
                return Err(sqlx::Error::Protocol(
                    "a history row without its tenant".into(),
                ));
            };
            let record = record_from_text(row).map_err(|e| sqlx::Error::Decode(e.into()))?;
            found.entry(i).or_default().push(record);
        }
    }
    Ok(Some(
        places
            .iter()
            .enumerate()
            .map(|(i, (schema, _))| match present.contains(*schema) {
                false => History::Missing,
                true => {
                    let mut records = found.remove(&i).unwrap_or_default();
                    records.sort_unstable_by(|a, b| a.version.cmp(&b.version));
                    History::Current(records)
                }
            })
            .collect(),
    ))
}
