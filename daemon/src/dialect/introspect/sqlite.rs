//! SQLite's schema from `sqlite_schema` and the `pragma_table_xinfo`, `pragma_index_list`,
//! `pragma_index_xinfo` and `pragma_foreign_key_list` table functions, in one request. What
//! the pragmas do not say (check constraints, generation expressions, an index's
//! expressions and predicate, a view's query) comes from the schema text, parsed and
//! re-printed by sqlparser so that whitespace and case of keywords do not count; text that
//! does not parse is compared with its whitespace squashed.

use sqlparser::{
    ast::{ColumnOption, Statement, TableConstraint},
    dialect::SQLiteDialect,
    parser::Parser,
};

use super::{Row, col, opt, truthy};
use crate::model::{
    Column, Constraint, ConstraintKind, Index, SchemaModel, View, hash_text, squash,
};

/// The catalog queries: rows tagged `m` schema object, `c` column, `i` index key, `f`
/// foreign key column. Each row's second column is the table it belongs to.
pub(super) const SQL: &str = "\
SELECT 'm', tbl_name, type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%';
SELECT 'c', m.name, p.name, p.type, CAST(p.\"notnull\" AS TEXT), p.dflt_value, \
CAST(p.pk AS TEXT), CAST(p.hidden AS TEXT) \
FROM sqlite_schema m, pragma_table_xinfo(m.name) p \
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid;
SELECT 'i', m.name, l.name, CAST(l.\"unique\" AS TEXT), l.origin, x.name, \
CAST(x.\"desc\" AS TEXT), x.coll \
FROM sqlite_schema m, pragma_index_list(m.name) l, pragma_index_xinfo(l.name) x \
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND x.key = 1 \
ORDER BY m.name, l.name, x.seqno;
SELECT 'f', m.name, CAST(p.id AS TEXT), p.\"table\", p.\"from\", p.\"to\", p.on_update, \
p.on_delete FROM sqlite_schema m, pragma_foreign_key_list(m.name) p \
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.id, p.seq";

fn parse(sql: &str) -> Option<Statement> {
    let mut statements = Parser::parse_sql(&SQLiteDialect {}, sql).ok()?;
    (statements.len() == 1).then(|| statements.remove(0))
}

/// A foreign key being read: its target table, columns, target columns and actions.
type ForeignKey = (String, Vec<String>, Vec<String>, String);

/// The model from the rows of [`SQL`].
pub(super) fn build(rows: Vec<Row>) -> SchemaModel {
    let mut m = SchemaModel::default();
    let mut index_sql = std::collections::HashMap::new();
    for r in rows.iter().filter(|r| col(r, 0) == "m") {
        let (table, name, sql) = (col(r, 1), col(r, 3), col(r, 4));
        match col(r, 2) {
            "table" => {
                m.tables.entry(table.to_owned()).or_default();
            }
            "view" => {
                let definition = match parse(sql) {
                    Some(Statement::CreateView(v)) => v.query.to_string(),
                    _ => squash(sql),
                };
                m.views.insert(
                    name.to_owned(),
                    View {
                        materialized: false,
                        definition,
                    },
                );
            }
            "index" => {
                index_sql.insert(name.to_owned(), sql.to_owned());
            }
            _ => {}
        }
    }
    for r in rows
        .iter()
        .filter(|r| col(r, 0) == "m" && col(r, 2) == "trigger")
    {
        if let Some(t) = m.tables.get_mut(col(r, 1)) {
            t.triggers
                .insert(col(r, 3).to_owned(), hash_text(&squash(col(r, 4))));
        }
    }
    let table_sql: std::collections::HashMap<&str, &str> = rows
        .iter()
        .filter(|r| col(r, 0) == "m" && col(r, 2) == "table")
        .map(|r| (col(r, 1), col(r, 4)))
        .collect();
    let mut pk: std::collections::BTreeMap<String, Vec<(u32, String)>> = Default::default();
    let mut keys: std::collections::BTreeMap<(String, String), (Index, String)> =
        Default::default();
    let mut fks: std::collections::BTreeMap<(String, String), ForeignKey> = Default::default();
    for r in &rows {
        let table = col(r, 1);
        let Some(t) = m.tables.get_mut(table) else {
            continue;
        };
        match col(r, 0) {
            "c" => {
                let generated = match col(r, 7) {
                    "2" => Some("virtual"),
                    "3" => Some("stored"),
                    _ => None,
                };
                let name = col(r, 2);
                let generated = generated.map(|g| {
                    let expr = table_sql
                        .get(table)
                        .and_then(|sql| generation(sql, name))
                        .unwrap_or_default();
                    format!("{g} {expr}").trim_end().to_owned()
                });
                let position: u32 = col(r, 6).parse().unwrap_or(0);
                if position > 0 {
                    pk.entry(table.to_owned())
                        .or_default()
                        .push((position, format!("\"{name}\"")));
                }
                t.columns.push(Column {
                    name: name.to_owned(),
                    data_type: col(r, 3).to_ascii_uppercase(),
                    nullable: !truthy(col(r, 4)),
                    default: opt(r, 5).map(|d| squash(&d)),
                    generated,
                    collation: None,
                });
            }
            "i" => {
                let name = col(r, 2).to_owned();
                let entry = keys.entry((table.to_owned(), name)).or_insert_with(|| {
                    let index = Index {
                        unique: truthy(col(r, 3)),
                        ..Default::default()
                    };
                    (index, col(r, 4).to_owned())
                });
                let mut key = match opt(r, 5) {
                    Some(c) => format!("\"{c}\""),
                    None => "<expression>".to_owned(),
                };
                if col(r, 7) != "BINARY" {
                    key = format!("{key} COLLATE {}", col(r, 7));
                }
                if truthy(col(r, 6)) {
                    key.push_str(" DESC");
                }
                entry.0.keys.push(key);
            }
            "f" => {
                let e = fks
                    .entry((table.to_owned(), col(r, 2).to_owned()))
                    .or_insert_with(|| {
                        let actions = format!("ON UPDATE {} ON DELETE {}", col(r, 6), col(r, 7));
                        (col(r, 3).to_owned(), Vec::new(), Vec::new(), actions)
                    });
                e.1.push(format!("\"{}\"", col(r, 4)));
                e.2.push(opt(r, 5).map(|c| format!("\"{c}\"")).unwrap_or_default());
            }
            _ => {}
        }
    }
    for (table, mut columns) in pk {
        let Some(t) = m.tables.get_mut(&table) else {
            continue;
        };
        columns.sort();
        let list: Vec<String> = columns.into_iter().map(|(_, c)| c).collect();
        t.constraints.insert(
            "primary key".into(),
            Constraint {
                kind: ConstraintKind::PrimaryKey,
                definition: format!("PRIMARY KEY ({})", list.join(", ")),
                generated_name: true,
            },
        );
    }
    for ((table, name), (mut index, origin)) in keys {
        let Some(t) = m.tables.get_mut(&table) else {
            continue;
        };
        match origin.as_str() {
            // The primary key's own index says what the key does.
            "pk" => {}
            "u" => {
                t.constraints.insert(
                    name,
                    Constraint {
                        kind: ConstraintKind::Unique,
                        definition: format!("UNIQUE ({})", index.keys.join(", ")),
                        generated_name: true,
                    },
                );
            }
            _ => {
                if let Some(Statement::CreateIndex(ci)) =
                    index_sql.get(&name).and_then(|sql| parse(sql))
                {
                    index.keys = ci.columns.iter().map(|c| c.column.to_string()).collect();
                    index.predicate = ci.predicate.map(|p| p.to_string());
                }
                t.indexes.insert(name, index);
            }
        }
    }
    for ((table, _), (target, from, to, actions)) in fks {
        let Some(t) = m.tables.get_mut(&table) else {
            continue;
        };
        let definition = format!(
            "FOREIGN KEY ({}) REFERENCES \"{target}\" ({}) {actions}",
            from.join(", "),
            to.join(", ")
        );
        // SQLite keeps no name for a foreign key: it is known by what it is.
        t.constraints.insert(
            format!("foreign key ({}) -> {target}", from.join(", ")),
            Constraint {
                kind: ConstraintKind::ForeignKey,
                definition,
                generated_name: true,
            },
        );
    }
    for (table, sql) in table_sql {
        let Some(t) = m.tables.get_mut(table) else {
            continue;
        };
        for (name, expr, generated_name) in checks(sql) {
            t.constraints.insert(
                name,
                Constraint {
                    kind: ConstraintKind::Check,
                    definition: format!("CHECK ({expr})"),
                    generated_name,
                },
            );
        }
    }
    m
}

/// The check constraints of a `CREATE TABLE`: (name, expression, whether the name is made
/// up). An unnamed check is known by its expression.
fn checks(sql: &str) -> Vec<(String, String, bool)> {
    let Some(Statement::CreateTable(ct)) = parse(sql) else {
        return Vec::new();
    };
    let named = |name: Option<String>, expr: String| match name {
        Some(n) => (n, expr, false),
        None => (format!("check ({expr})"), expr, true),
    };
    let mut out = Vec::new();
    for c in &ct.columns {
        for o in &c.options {
            if let ColumnOption::Check(check) = &o.option {
                let name = o
                    .name
                    .as_ref()
                    .or(check.name.as_ref())
                    .map(|n| n.value.clone());
                out.push(named(name, check.expr.to_string()));
            }
        }
    }
    for c in &ct.constraints {
        if let TableConstraint::Check(check) = c {
            let name = check.name.as_ref().map(|n| n.value.clone());
            out.push(named(name, check.expr.to_string()));
        }
    }
    out
}

/// The generation expression of column `column` in a `CREATE TABLE`.
fn generation(sql: &str, column: &str) -> Option<String> {
    let Some(Statement::CreateTable(ct)) = parse(sql) else {
        return None;
    };
    let c = ct.columns.iter().find(|c| c.name.value == column)?;
    c.options.iter().find_map(|o| match &o.option {
        ColumnOption::Generated {
            generation_expr: Some(e),
            ..
        } => Some(e.to_string()),
        _ => None,
    })
}
