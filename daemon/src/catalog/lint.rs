//! The lint: each statement of a script parsed with `sqlparser` in the fleet's dialect and
//! classified ([`LintCode`]): statements that destroy data, and PostgreSQL statements that
//! hold a blocking lock for a long time. A statement the parser cannot read is an
//! `unparsed` note, never an error.

use std::collections::HashSet;

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnOption, DataType, ObjectName, ObjectType,
    RenameTableNameKind, Statement, TableConstraint,
};

use super::parse::{on_parser_stack, parse};
use crate::model::{DialectKind, Finding, LintCode, LintKind, StatementSpan};

/// PostgreSQL functions whose value changes per row: a column added with one as its
/// default is written into every row (PostgreSQL documentation, "ALTER TABLE", Notes).
const VOLATILE: [&str; 8] = [
    "random(",
    "gen_random_uuid(",
    "uuid_generate_v1(",
    "uuid_generate_v4(",
    "clock_timestamp(",
    "timeofday(",
    "nextval(",
    "txid_current(",
];

/// The findings of the statements `spans` of `sql`, in order; parsed on a thread with a
/// known stack ([`on_parser_stack`]), every statement `unparsed` if it cannot start.
pub(super) fn lint(sql: &str, spans: &[StatementSpan], dialect: DialectKind) -> Vec<Finding> {
    on_parser_stack(|| lint_here(sql, spans, dialect)).unwrap_or_else(|| {
        spans
            .iter()
            .map(|span| Finding {
                code: LintCode::Unparsed,
                line: span.line,
                blocks: false,
            })
            .collect()
    })
}

fn lint_here(sql: &str, spans: &[StatementSpan], dialect: DialectKind) -> Vec<Finding> {
    let parser = super::script::sql_dialect(dialect);
    let mut state = State {
        postgres: dialect == DialectKind::Postgres,
        ..State::default()
    };
    let mut findings = Vec::new();
    // Tables dropped, by the finding that says so: a later rename onto the same name means
    // the table was rebuilt, not lost (SQLite documentation, "ALTER TABLE", section 7).
    let mut dropped: Vec<(usize, Vec<String>)> = Vec::new();
    for span in spans {
        let text = &sql[span.bytes.clone()];
        let mut found = Vec::new();
        match parse(parser, text) {
            Some(statements) => {
                for statement in &statements {
                    if let Statement::Drop {
                        object_type: ObjectType::Table,
                        names,
                        ..
                    } = statement
                    {
                        let names: Vec<String> = names.iter().map(key).collect();
                        // A table this script created holds nothing to lose.
                        if names.iter().all(|n| state.created.contains(n)) {
                            continue;
                        }
                        dropped.push((findings.len() + found.len(), names));
                    }
                    state.classify(statement, &mut found);
                }
            }
            None => found.push(LintCode::Unparsed),
        }
        findings.extend(found.into_iter().map(|code| Finding {
            code,
            line: span.line,
            blocks: code.kind() == LintKind::Destructive,
        }));
    }
    let rebuilt: Vec<usize> = dropped
        .into_iter()
        .filter(|(_, names)| names.iter().all(|n| state.renamed_to.contains(n)))
        .map(|(i, _)| i)
        .collect();
    findings
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !rebuilt.contains(i))
        .map(|(_, f)| f)
        .collect()
}

/// Drops the `narrowing_type` findings of `migrations` (in version order) that widen the
/// column instead: an earlier statement of the set gave the column a type of the same family
/// that holds no more values (`varchar(128)` then `varchar(1024)`, `smallint` then
/// `bigint`). Where no earlier statement of the set names the column, the finding stays.
pub(super) fn drop_widenings(migrations: &mut [crate::model::Migration], dialect: DialectKind) {
    on_parser_stack(|| drop_widenings_here(migrations, dialect));
}

fn drop_widenings_here(migrations: &mut [crate::model::Migration], dialect: DialectKind) {
    let narrowing = |m: &crate::model::Migration| {
        m.up.findings
            .iter()
            .any(|f| f.code == LintCode::NarrowingType)
    };
    if !migrations.iter().any(narrowing) {
        return;
    }
    let parser = super::script::sql_dialect(dialect);
    let mut types: std::collections::HashMap<(String, String), DataType> = Default::default();
    for m in migrations.iter_mut() {
        let mut widened = Vec::new();
        for span in &m.up.spans {
            let Some(statements) = parse(parser, &m.up.sql[span.bytes.clone()]) else {
                continue;
            };
            for statement in &statements {
                for (table, column, new, changed) in column_types(statement) {
                    let at = (table, column);
                    if changed && types.get(&at).is_some_and(|old| widens(old, &new)) {
                        widened.push(span.line);
                    }
                    types.insert(at, new);
                }
            }
        }
        if widened.is_empty() {
            continue;
        }
        m.up.findings
            .retain(|f| !(f.code == LintCode::NarrowingType && widened.contains(&f.line)));
        m.up.destructive = m.up.findings.iter().any(|f| f.blocks);
    }
}

/// The columns `statement` gives a type: (table, column, type, true when it changes an
/// existing column's type).
fn column_types(statement: &Statement) -> Vec<(String, String, DataType, bool)> {
    let name = |i: &sqlparser::ast::Ident| i.value.to_ascii_lowercase();
    match statement {
        Statement::CreateTable(t) => t
            .columns
            .iter()
            .map(|c| (key(&t.name), name(&c.name), c.data_type.clone(), false))
            .collect(),
        Statement::AlterTable(a) => a
            .operations
            .iter()
            .filter_map(|op| match op {
                AlterTableOperation::AddColumn { column_def, .. } => {
                    Some((name(&column_def.name), column_def.data_type.clone(), false))
                }
                AlterTableOperation::AlterColumn {
                    column_name,
                    op: AlterColumnOperation::SetDataType { data_type, .. },
                } => Some((name(column_name), data_type.clone(), true)),
                AlterTableOperation::ModifyColumn {
                    col_name,
                    data_type,
                    ..
                } => Some((name(col_name), data_type.clone(), true)),
                AlterTableOperation::ChangeColumn {
                    new_name,
                    data_type,
                    ..
                } => Some((name(new_name), data_type.clone(), true)),
                _ => None,
            })
            .map(|(column, ty, changed)| (key(&a.name), column, ty, changed))
            .collect(),
        _ => Vec::new(),
    }
}

/// True when `new` holds every value `old` holds: the same family with sizes no smaller, or
/// a larger integer.
fn widens(old: &DataType, new: &DataType) -> bool {
    let (old_family, old_sizes) = family(old);
    let (new_family, new_sizes) = family(new);
    let rank = |f: &str| match f {
        "TINYINT" => Some(1),
        "SMALLINT" | "INT2" => Some(2),
        "MEDIUMINT" => Some(3),
        "INT" | "INTEGER" | "INT4" => Some(4),
        "BIGINT" | "INT8" => Some(8),
        _ => None,
    };
    if let (Some(a), Some(b)) = (rank(&old_family), rank(&new_family)) {
        return b >= a;
    }
    old_family == new_family
        && old_sizes.len() == new_sizes.len()
        && old_sizes.iter().zip(&new_sizes).all(|(o, n)| n >= o)
}

/// A type's family (`VARCHAR`, `NUMERIC`, …) and its sizes: `character varying(128)` is
/// (`VARCHAR`, [128]).
fn family(ty: &DataType) -> (String, Vec<u64>) {
    let text = ty.to_string().to_ascii_uppercase();
    let (head, sizes) = match text.split_once('(') {
        Some((head, rest)) => (
            head.trim().to_owned(),
            rest.trim_end_matches(')').to_owned(),
        ),
        None => (text.trim().to_owned(), String::new()),
    };
    let head = match head.as_str() {
        "CHARACTER VARYING" | "VARCHAR" => "VARCHAR".to_owned(),
        "CHARACTER" | "CHAR" => "CHAR".to_owned(),
        "DECIMAL" | "NUMERIC" => "NUMERIC".to_owned(),
        other => other.to_owned(),
    };
    let sizes = sizes
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    (head, sizes)
}

/// What the script did so far: tables it created (an index on one blocks nobody) and
/// whether it validated a constraint (a `SET NOT NULL` after one is cheap).
#[derive(Default)]
struct State {
    postgres: bool,
    created: HashSet<String>,
    /// Names tables were renamed to.
    renamed_to: HashSet<String>,
    validated: bool,
}

impl State {
    fn classify(&mut self, statement: &Statement, found: &mut Vec<LintCode>) {
        match statement {
            Statement::Drop { object_type, .. } => match object_type {
                ObjectType::Table => found.push(LintCode::DropTable),
                ObjectType::Schema => found.push(LintCode::DropSchema),
                ObjectType::Database => found.push(LintCode::DropDatabase),
                _ => {}
            },
            Statement::Truncate(_) => found.push(LintCode::Truncate),
            Statement::Delete(d) if d.selection.is_none() => {
                found.push(LintCode::DeleteWithoutWhere);
            }
            Statement::Update(u) if u.selection.is_none() => {
                found.push(LintCode::UpdateWithoutWhere);
            }
            Statement::CreateTable(t) => {
                self.created.insert(key(&t.name));
            }
            Statement::CreateIndex(i)
                if self.postgres
                    && !i.concurrently
                    && !self.created.contains(&key(&i.table_name)) =>
            {
                found.push(LintCode::BlockingIndex);
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.renamed_to.insert(key(&r.new_name));
                }
            }
            Statement::AlterTable(a) => {
                let new_table = self.created.contains(&key(&a.name));
                for op in &a.operations {
                    self.alter(op, new_table, found);
                }
            }
            _ => {}
        }
    }

    fn alter(&mut self, op: &AlterTableOperation, new_table: bool, found: &mut Vec<LintCode>) {
        match op {
            AlterTableOperation::DropColumn { .. } => found.push(LintCode::DropColumn),
            AlterTableOperation::ModifyColumn { data_type, .. }
            | AlterTableOperation::ChangeColumn { data_type, .. }
                if bounded(data_type) =>
            {
                found.push(LintCode::NarrowingType);
            }
            AlterTableOperation::AlterColumn { op, .. } => match op {
                AlterColumnOperation::SetDataType { data_type, .. } => {
                    if bounded(data_type) {
                        found.push(LintCode::NarrowingType);
                    }
                    if self.postgres && !new_table {
                        found.push(LintCode::TypeRewrite);
                    }
                }
                AlterColumnOperation::SetNotNull
                    if self.postgres && !new_table && !self.validated =>
                {
                    found.push(LintCode::SetNotNull);
                }
                _ => {}
            },
            AlterTableOperation::AddColumn { column_def, .. } if self.postgres && !new_table => {
                let volatile = column_def.options.iter().any(|o| match &o.option {
                    ColumnOption::Default(expr) => {
                        let text = expr.to_string().to_ascii_lowercase().replace(' ', "");
                        VOLATILE.iter().any(|f| text.contains(f))
                    }
                    _ => false,
                });
                if volatile {
                    found.push(LintCode::VolatileDefault);
                }
                let references = column_def
                    .options
                    .iter()
                    .any(|o| matches!(o.option, ColumnOption::ForeignKey(_)));
                if references {
                    found.push(LintCode::ValidatingForeignKey);
                }
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::ForeignKey(_),
                not_valid: false,
            } if self.postgres && !new_table => found.push(LintCode::ValidatingForeignKey),
            AlterTableOperation::ValidateConstraint { .. } => self.validated = true,
            AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::As(name) | RenameTableNameKind::To(name),
            } => {
                self.renamed_to.insert(key(name));
            }
            _ => {}
        }
    }
}

/// A table name compared without quotes or case.
fn key(name: &ObjectName) -> String {
    name.to_string()
        .replace(['"', '`'], "")
        .to_ascii_lowercase()
}

/// True for types that hold fewer values than an unbounded one: lengths, precisions, small
/// integers.
fn bounded(data_type: &DataType) -> bool {
    let text = data_type.to_string().to_ascii_uppercase();
    let sized = text.contains('(')
        && [
            "CHAR",
            "VARCHAR",
            "CHARACTER",
            "NUMERIC",
            "DECIMAL",
            "BINARY",
            "VARBINARY",
            "BIT",
        ]
        .iter()
        .any(|t| text.starts_with(t));
    let small = ["SMALLINT", "TINYINT", "INT2", "MEDIUMINT", "REAL", "FLOAT4"]
        .iter()
        .any(|t| text.starts_with(t));
    sized || small
}

#[cfg(test)]
#[path = "lint/tests.rs"]
mod tests;
