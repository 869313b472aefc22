//! A tenant's schema read into the canonical [`SchemaModel`]: one request per tenant (the
//! catalog queries of its dialect sent together, each row tagged by what it describes),
//! then the rows folded into the model without a server.
//!
//! | file | what |
//! | --- | --- |
//! | `postgres.rs` | `pg_catalog`: `format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`, `pg_get_triggerdef` |
//! | `mysql.rs` | MySQL and MariaDB: `information_schema` |
//! | `sqlite.rs` | `sqlite_schema` and `pragma_table_xinfo`/`index_list`/`index_xinfo`/`foreign_key_list`, the schema text re-printed by sqlparser |

mod mysql;
mod postgres;
mod sqlite;

use super::{DbError, session::Conn};
use crate::model::{DialectKind, SchemaModel};

/// One catalog row, every column as optional text; the first column is its tag.
type Row = Vec<Option<String>>;

/// The schema of the tenant at `schema` (PostgreSQL's schema or MySQL's database; `None`
/// for SQLite), without the tables named in `own` (Avocet's history and log tables) and
/// what belongs to them.
///
/// # Errors
/// [`DbError::Query`] when the catalog cannot be read.
pub(super) async fn read<C: Conn>(
    kind: DialectKind,
    conn: &mut C,
    schema: Option<&str>,
    own: &[String],
) -> Result<SchemaModel, DbError> {
    let context = "reading the schema from the catalog";
    let schema = schema.unwrap_or_default();
    let rows = match kind {
        // The `search_path` first, in the same request: its one row has no tag and is
        // left out by the fold.
        DialectKind::Postgres => conn
            .text_rows(&format!(
                "{};\n{}",
                postgres::search_path(schema),
                postgres::sql(schema)
            ))
            .await
            .map_err(DbError::query(context))?,
        DialectKind::Mysql => match conn.text_rows(&mysql::sql(schema, true)).await {
            Ok(rows) => rows,
            // MySQL's CHECK_CONSTRAINTS has no TABLE_NAME (MariaDB's has).
            Err(e) if mysql::is_unknown_column(&e) => conn
                .text_rows(&mysql::sql(schema, false))
                .await
                .map_err(DbError::query(context))?,
            Err(e) => return Err(DbError::query(context)(e)),
        },
        DialectKind::Sqlite => conn
            .text_rows(sqlite::SQL)
            .await
            .map_err(DbError::query(context))?,
    };
    let rows: Vec<Row> = rows.into_iter().filter(|r| !belongs_to(r, own)).collect();
    Ok(match kind {
        DialectKind::Postgres => postgres::build(rows),
        DialectKind::Mysql => mysql::build(rows, schema),
        DialectKind::Sqlite => sqlite::build(rows),
    })
}

/// True when `row` describes one of `own` tables or something of theirs: every query puts
/// the table a row belongs to second.
fn belongs_to(row: &Row, own: &[String]) -> bool {
    row.get(1)
        .and_then(|t| t.as_deref())
        .is_some_and(|t| own.iter().any(|o| o == t))
}

/// Column `i` of `row`, `""` when `NULL` or absent.
fn col(row: &Row, i: usize) -> &str {
    row.get(i).and_then(|c| c.as_deref()).unwrap_or_default()
}

/// Column `i` of `row`, `None` when `NULL` or absent.
fn opt(row: &Row, i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

/// True for `t`/`true`/`1`/`YES`: a boolean as each catalog spells it.
fn truthy(s: &str) -> bool {
    matches!(s, "t" | "true" | "1" | "YES" | "yes")
}

/// True when `name` is what the database calls an object of `table` it names itself:
/// `<table>_…_<suffix>` with an optional number after the suffix (PostgreSQL's
/// `accounts_pkey`, `users_email_key`, `orders_total_check1`; MySQL's `orders_ibfk_1`,
/// `orders_chk_1`).
fn generated(name: &str, table: &str, suffixes: &[&str]) -> bool {
    let Some(rest) = name.strip_prefix(table).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    let rest = rest
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('_');
    suffixes
        .iter()
        .any(|s| rest == *s || rest.ends_with(&format!("_{s}")))
}

#[cfg(test)]
mod tests;
