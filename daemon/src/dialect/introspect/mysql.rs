//! MySQL's and MariaDB's schema from `information_schema`, in one request, for the tenant's
//! database only. Names of the tenant's own database are taken out of view definitions
//! (the server qualifies every table with it), so two tenants' views compare equal.

use super::{Row, col, generated, opt, truthy};
use crate::model::{
    Column, Constraint, ConstraintKind, Index, SchemaModel, View, hash_text, squash,
};

/// `s` as a string literal whatever `sql_mode` says of backslashes.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// True when `e` is MySQL's "unknown column" (1054): a server without MariaDB's
/// `CHECK_CONSTRAINTS.TABLE_NAME`.
pub(super) fn is_unknown_column(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42S22")
}

/// The catalog queries, `;`-joined: rows tagged `t` table, `c` column, `i` index key, `k`
/// constraint, `f` foreign key column, `x` check, `v` view, `g` trigger, `r` routine.
/// `mariadb`: read checks by their own table (MariaDB names a column's check after the
/// column, so names repeat across tables); else through `TABLE_CONSTRAINTS` (MySQL 8).
pub(super) fn sql(db: &str, mariadb: bool) -> String {
    let db = lit(db);
    let checks = match mariadb {
        true => format!(
            "SELECT 'x', TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {db}"
        ),
        false => format!(
            "SELECT 'x', tc.TABLE_NAME, cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE \
             FROM information_schema.CHECK_CONSTRAINTS cc \
             JOIN information_schema.TABLE_CONSTRAINTS tc \
               ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA \
              AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK' \
             WHERE cc.CONSTRAINT_SCHEMA = {db}"
        ),
    };
    [
        format!(
            "SELECT 't', TABLE_NAME, TABLE_TYPE, CAST(TABLE_COLLATION AS CHAR) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db}"
        ),
        format!(
            "SELECT 'c', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
             EXTRA, GENERATION_EXPRESSION, COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {db} \
             ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ),
        format!(
            "SELECT 'i', TABLE_NAME, INDEX_NAME, CAST(NON_UNIQUE AS CHAR), COLUMN_NAME, \
             COLLATION, CAST(SUB_PART AS CHAR), INDEX_TYPE \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {db} \
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ),
        format!(
            "SELECT 'k', TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE \
             FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {db}"
        ),
        format!(
            "SELECT 'f', k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, \
             k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
              AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = {db} AND k.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        ),
        checks,
        format!(
            "SELECT 'v', TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE \
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {db}"
        ),
        format!(
            "SELECT 'g', EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, \
             ACTION_ORIENTATION, ACTION_STATEMENT \
             FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {db}"
        ),
        format!(
            "SELECT 'r', CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME), DTD_IDENTIFIER, \
             ROUTINE_DEFINITION, IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE \
             FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db}"
        ),
    ]
    .join(";\n")
}

/// A foreign key being read: its columns, target table, target columns and actions.
type ForeignKey = (Vec<String>, String, Vec<String>, String);

/// The model from the rows of [`sql`]; `db` is taken out of view definitions.
pub(super) fn build(rows: Vec<Row>, db: &str) -> SchemaModel {
    let mut m = SchemaModel::default();
    let mut collation = std::collections::HashMap::new();
    for r in rows
        .iter()
        .filter(|r| col(r, 0) == "t" && col(r, 2) == "BASE TABLE")
    {
        m.tables.entry(col(r, 1).to_owned()).or_default();
        collation.insert(col(r, 1).to_owned(), col(r, 3).to_owned());
    }
    let kinds: std::collections::HashMap<(String, String), String> = rows
        .iter()
        .filter(|r| col(r, 0) == "k")
        .map(|r| {
            (
                (col(r, 1).to_owned(), col(r, 2).to_owned()),
                col(r, 3).to_owned(),
            )
        })
        .collect();
    // Key columns per (table, index), in order.
    let mut keys: std::collections::BTreeMap<(String, String), (Index, Vec<String>)> =
        Default::default();
    let mut fks: std::collections::BTreeMap<(String, String), ForeignKey> = Default::default();
    let qualifier = format!("`{}`.", db.replace('`', "``"));
    for r in &rows {
        let table = col(r, 1);
        match col(r, 0) {
            "c" => {
                let Some(t) = m.tables.get_mut(table) else {
                    continue;
                };
                let extra = col(r, 6).to_ascii_lowercase();
                let expr = opt(r, 7).filter(|e| !e.is_empty());
                let generated = match expr {
                    Some(e) if extra.contains("stored") || extra.contains("persistent") => {
                        Some(format!("stored {}", squash(&e)))
                    }
                    Some(e) => Some(format!("virtual {}", squash(&e))),
                    None if extra.contains("auto_increment") => Some("auto_increment".into()),
                    None => None,
                };
                let on_update = extra
                    .find("on update")
                    .map(|at| format!(" {}", &extra[at..]))
                    .unwrap_or_default();
                let default = match &generated {
                    Some(g) if g != "auto_increment" => None,
                    _ => opt(r, 5).map(|d| format!("{}{on_update}", squash(&d))),
                };
                t.columns.push(Column {
                    name: col(r, 2).to_owned(),
                    data_type: col(r, 3).to_owned(),
                    nullable: truthy(col(r, 4)),
                    default,
                    generated,
                    collation: opt(r, 8).filter(|c| collation.get(table) != Some(c)),
                });
            }
            "i" => {
                let name = col(r, 2).to_owned();
                let entry = keys.entry((table.to_owned(), name)).or_insert_with(|| {
                    let index = Index {
                        unique: !truthy(col(r, 3)),
                        method: opt(r, 7),
                        ..Default::default()
                    };
                    (index, Vec::new())
                });
                let mut key = format!("`{}`", col(r, 4));
                if let Some(part) = opt(r, 6) {
                    key = format!("{key}({part})");
                }
                if col(r, 5) == "D" {
                    key.push_str(" DESC");
                }
                entry.0.keys.push(key);
                entry.1.push(col(r, 4).to_owned());
            }
            "f" => {
                let e = fks
                    .entry((table.to_owned(), col(r, 2).to_owned()))
                    .or_insert_with(|| {
                        let actions = format!("ON UPDATE {} ON DELETE {}", col(r, 6), col(r, 7));
                        (Vec::new(), col(r, 4).to_owned(), Vec::new(), actions)
                    });
                e.0.push(format!("`{}`", col(r, 3)));
                e.2.push(format!("`{}`", col(r, 5)));
            }
            "x" => {
                let Some(t) = m.tables.get_mut(table) else {
                    continue;
                };
                let name = col(r, 2);
                let is_column = t.columns.iter().any(|c| c.name == name);
                t.constraints.insert(
                    name.to_owned(),
                    Constraint {
                        kind: ConstraintKind::Check,
                        definition: format!("CHECK ({})", squash(col(r, 3))),
                        generated_name: is_column
                            || name.starts_with("CONSTRAINT_")
                            || generated(name, table, &["chk"]),
                    },
                );
            }
            "v" => {
                let definition = squash(&col(r, 2).replace(&qualifier, ""));
                let definition = match (col(r, 3), col(r, 4)) {
                    ("NONE", "DEFINER") => definition,
                    (check, security) => format!("{definition} [{check} {security}]"),
                };
                m.views.insert(
                    table.to_owned(),
                    View {
                        materialized: false,
                        definition,
                    },
                );
            }
            "g" => {
                if let Some(t) = m.tables.get_mut(table) {
                    let text = (3..=6).map(|i| squash(col(r, i))).collect::<Vec<_>>();
                    t.triggers
                        .insert(col(r, 2).to_owned(), hash_text(&text.join("\n")));
                }
            }
            "r" => {
                let text = (2..=6).map(|i| squash(col(r, i))).collect::<Vec<_>>();
                m.functions
                    .insert(table.to_owned(), hash_text(&text.join("\n")));
            }
            _ => {}
        }
    }
    for ((table, name), (index, columns)) in keys {
        let Some(t) = m.tables.get_mut(&table) else {
            continue;
        };
        let list = index.keys.join(", ");
        let kind = kinds
            .get(&(table.clone(), name.clone()))
            .map(String::as_str);
        match kind {
            Some("PRIMARY KEY") => {
                t.constraints.insert(
                    name,
                    Constraint {
                        kind: ConstraintKind::PrimaryKey,
                        definition: format!("PRIMARY KEY ({list})"),
                        generated_name: true,
                    },
                );
            }
            Some("UNIQUE") => {
                let generated_name = generated_index_name(&name, &columns);
                t.constraints.insert(
                    name,
                    Constraint {
                        kind: ConstraintKind::Unique,
                        definition: format!("UNIQUE ({list})"),
                        generated_name,
                    },
                );
            }
            _ => {
                let generated_name = generated_index_name(&name, &columns)
                    || kinds.contains_key(&(table.clone(), name.clone()));
                t.indexes.insert(
                    name,
                    Index {
                        generated_name,
                        ..index
                    },
                );
            }
        }
    }
    for ((table, name), (from, target, to, actions)) in fks {
        let Some(t) = m.tables.get_mut(&table) else {
            continue;
        };
        let generated_name = generated(&name, &table, &["ibfk"]);
        t.constraints.insert(
            name,
            Constraint {
                kind: ConstraintKind::ForeignKey,
                definition: format!(
                    "FOREIGN KEY ({}) REFERENCES `{target}` ({}) {actions}",
                    from.join(", "),
                    to.join(", ")
                ),
                generated_name,
            },
        );
    }
    m
}

/// True when MySQL named the index after its first column (`email`, `email_2`).
fn generated_index_name(name: &str, columns: &[String]) -> bool {
    let Some(first) = columns.first() else {
        return false;
    };
    name == first
        || name
            .strip_prefix(first.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}
