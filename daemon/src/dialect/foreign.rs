//! Reading another migration tool's history table (for adoption), every column as text in
//! one shape: version, name, ok (`'1'` or `'0'`), checksum, kind. Table layouts as each tool
//! creates them: sqlx `_sqlx_migrations`, diesel `__diesel_schema_migrations`,
//! golang-migrate and dbmate `schema_migrations`, Flyway `flyway_schema_history`, refinery
//! `refinery_schema_history`. Unqualified: the session's schema or database is the tenant's.

use super::spec::Dialect;
use crate::model::{ForeignRow, SetFormat};

/// One row of [`select_sql`]'s result, as the engine reads it.
pub(super) fn row(mut columns: Vec<Option<String>>) -> ForeignRow {
    columns.resize(5, None);
    let mut columns = columns.into_iter();
    let mut next = || columns.next().flatten();
    ForeignRow {
        version: next(),
        name: next(),
        ok: next().as_deref() == Some("1"),
        checksum: next(),
        kind: next(),
    }
}

/// The `SELECT` of `tool`'s history table in `D`'s SQL; `None` for [`SetFormat::Auto`],
/// which names no tool.
pub(super) fn select_sql<D: Dialect>(tool: SetFormat) -> Option<String> {
    let text = |col: &str| format!("CAST({col} AS {})", D::TEXT);
    let hex = D::hex;
    let null = text("NULL");
    let flag = |col: &str, ok_when: bool| {
        let (t, f) = if ok_when {
            ("'1'", "'0'")
        } else {
            ("'0'", "'1'")
        };
        format!("CASE WHEN {col} THEN {t} ELSE {f} END")
    };
    let one = text("'1'");
    let (columns, table, order) = match tool {
        SetFormat::Auto => return None,
        SetFormat::Sqlx => (
            [
                text("version"),
                text("description"),
                flag("success", true),
                hex("checksum"),
                null.clone(),
            ],
            "_sqlx_migrations",
            "version",
        ),
        SetFormat::Diesel => (
            [text("version"), null.clone(), one, null.clone(), null],
            "__diesel_schema_migrations",
            "version",
        ),
        SetFormat::GolangMigrate => (
            [
                text("version"),
                null.clone(),
                flag("dirty", false),
                null.clone(),
                null,
            ],
            "schema_migrations",
            "version",
        ),
        SetFormat::Dbmate => (
            [text("version"), null.clone(), one, null.clone(), null],
            "schema_migrations",
            "version",
        ),
        SetFormat::Flyway => (
            [
                text("version"),
                text("description"),
                flag("success", true),
                text("checksum"),
                text("type"),
            ],
            "flyway_schema_history",
            "installed_rank",
        ),
        SetFormat::Refinery => (
            [text("version"), text("name"), one, text("checksum"), null],
            "refinery_schema_history",
            "version",
        ),
    };
    Some(format!(
        "SELECT {} FROM {table} ORDER BY {order}",
        columns.join(", ")
    ))
}
