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
mod tests {
    use super::*;
    use crate::catalog::parse_script;
    use DialectKind::{Mysql as My, Postgres as Pg, Sqlite as Lite};
    use LintCode::*;

    /// Each statement, its dialect, and exactly the codes the lint must find in it.
    const TABLE: &[(DialectKind, &str, &[LintCode])] = &[
        // Destructive, in every dialect.
        (Pg, "DROP TABLE accounts", &[DropTable]),
        (My, "DROP TABLE IF EXISTS accounts, invoices", &[DropTable]),
        (Lite, "DROP TABLE accounts", &[DropTable]),
        (Pg, "ALTER TABLE accounts DROP COLUMN email", &[DropColumn]),
        (My, "ALTER TABLE accounts DROP COLUMN email", &[DropColumn]),
        (
            Lite,
            "ALTER TABLE accounts DROP COLUMN email",
            &[DropColumn],
        ),
        (Pg, "DROP SCHEMA billing CASCADE", &[DropSchema]),
        (My, "DROP DATABASE billing", &[DropDatabase]),
        (Pg, "TRUNCATE accounts", &[Truncate]),
        (My, "TRUNCATE TABLE accounts", &[Truncate]),
        (Pg, "DELETE FROM accounts", &[DeleteWithoutWhere]),
        (My, "DELETE FROM accounts", &[DeleteWithoutWhere]),
        (Lite, "DELETE FROM accounts", &[DeleteWithoutWhere]),
        (
            Pg,
            "UPDATE accounts SET active = false",
            &[UpdateWithoutWhere],
        ),
        (
            Lite,
            "UPDATE accounts SET active = 0",
            &[UpdateWithoutWhere],
        ),
        (My, "UPDATE accounts SET active = 0", &[UpdateWithoutWhere]),
        (
            My,
            "ALTER TABLE accounts MODIFY COLUMN name VARCHAR(20)",
            &[NarrowingType],
        ),
        (
            My,
            "ALTER TABLE accounts CHANGE name full_name VARCHAR(40) NOT NULL",
            &[NarrowingType],
        ),
        (
            Pg,
            "ALTER TABLE accounts ALTER COLUMN score TYPE smallint",
            &[NarrowingType, TypeRewrite],
        ),
        (
            Pg,
            "ALTER TABLE accounts ALTER COLUMN price TYPE numeric(10, 2)",
            &[NarrowingType, TypeRewrite],
        ),
        // PostgreSQL lock hazards.
        (
            Pg,
            "CREATE INDEX accounts_email ON accounts (email)",
            &[BlockingIndex],
        ),
        (
            Pg,
            "CREATE UNIQUE INDEX accounts_email ON accounts (email)",
            &[BlockingIndex],
        ),
        (
            Pg,
            "ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid()",
            &[VolatileDefault],
        ),
        (
            Pg,
            "ALTER TABLE accounts ADD COLUMN r float8 DEFAULT random()",
            &[VolatileDefault],
        ),
        (
            Pg,
            "ALTER TABLE accounts ALTER COLUMN email SET NOT NULL",
            &[SetNotNull],
        ),
        (
            Pg,
            "ALTER TABLE accounts ALTER COLUMN id TYPE bigint",
            &[TypeRewrite],
        ),
        (
            Pg,
            "ALTER TABLE invoices ADD CONSTRAINT fk FOREIGN KEY (account_id) REFERENCES accounts (id)",
            &[ValidatingForeignKey],
        ),
        (
            Pg,
            "ALTER TABLE invoices ADD COLUMN account_id int REFERENCES accounts (id)",
            &[ValidatingForeignKey],
        ),
        // Safe: nothing to say.
        (
            Pg,
            "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)",
            &[],
        ),
        (
            Pg,
            "ALTER TABLE invoices ADD CONSTRAINT fk FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID",
            &[],
        ),
        (
            Pg,
            "ALTER TABLE accounts ADD COLUMN created_at timestamptz DEFAULT now()",
            &[],
        ),
        (Pg, "ALTER TABLE accounts ADD COLUMN note text", &[]),
        (Pg, "DELETE FROM accounts WHERE id = 1", &[]),
        (Pg, "UPDATE accounts SET active = false WHERE id = 1", &[]),
        (Pg, "DROP INDEX accounts_email", &[]),
        (Pg, "DROP VIEW active_accounts", &[]),
        (My, "CREATE INDEX accounts_email ON accounts (email)", &[]),
        (My, "ALTER TABLE accounts MODIFY COLUMN name TEXT", &[]),
        (Lite, "CREATE INDEX accounts_email ON accounts (email)", &[]),
        (
            Lite,
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT)",
            &[],
        ),
        (Pg, "SELECT subquery.case FROM t AS subquery", &[]),
        (Pg, "INSERT INTO accounts (id) VALUES (1)", &[]),
        // What the parser cannot read is a note, not a crash or a silent pass.
        (
            Pg,
            "CREATE RULE r AS ON INSERT TO t DO ALSO NOTIFY t",
            &[Unparsed],
        ),
        (
            My,
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
            &[Unparsed],
        ),
    ];

    fn codes(dialect: DialectKind, sql: &str) -> Vec<LintCode> {
        let script = parse_script(sql, dialect).unwrap_or_else(|e| panic!("{sql}: {e}"));
        script.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn every_statement_of_the_table_is_classified_as_expected() {
        assert!(TABLE.len() >= 40, "{} statements", TABLE.len());
        let wrong: Vec<String> = TABLE
            .iter()
            .filter_map(|(dialect, sql, want)| {
                let got = codes(*dialect, sql);
                (got != *want).then(|| format!("{dialect:?} {sql}: {got:?}, expected {want:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_widening_of_a_column_the_set_created_is_no_narrowing() {
        let set = |alter: &str| {
            let mut migrations = vec![
                crate::model::Migration {
                    version: 1.into(),
                    name: "create".into(),
                    up: parse_script(
                        "CREATE TABLE repo (name varchar(128), n smallint, p numeric(10, 2));",
                        Pg,
                    )
                    .unwrap(),
                    down: None,
                    unordered: false,
                },
                crate::model::Migration {
                    version: 2.into(),
                    name: "alter".into(),
                    up: parse_script(alter, Pg).unwrap(),
                    down: None,
                    unordered: false,
                },
            ];
            drop_widenings(&mut migrations, Pg);
            let up = &migrations[1].up;
            (
                up.findings.iter().map(|f| f.code).collect::<Vec<_>>(),
                up.destructive,
            )
        };
        assert_eq!(
            set("ALTER TABLE repo ALTER COLUMN name TYPE varchar(1024);"),
            (vec![TypeRewrite], false)
        );
        assert_eq!(
            set("ALTER TABLE repo ALTER COLUMN p TYPE numeric(12, 2);"),
            (vec![TypeRewrite], false)
        );
        assert_eq!(
            set("ALTER TABLE repo ALTER COLUMN n TYPE smallint;"),
            (vec![TypeRewrite], false)
        );
        assert_eq!(
            set("ALTER TABLE repo ALTER COLUMN name TYPE varchar(20);"),
            (vec![NarrowingType, TypeRewrite], true)
        );
        assert_eq!(
            set("ALTER TABLE other ALTER COLUMN name TYPE varchar(1024);"),
            (vec![NarrowingType, TypeRewrite], true),
            "a column the set never typed stays a possible narrowing"
        );
    }

    #[test]
    fn update_without_where_is_a_data_rewrite_that_does_not_block() {
        let script = parse_script("UPDATE events SET kind = 'x';", Pg).unwrap();
        assert_eq!(
            script.findings[0].code.kind(),
            crate::model::LintKind::DataRewrite
        );
        assert!(!script.destructive);
    }

    #[test]
    fn what_the_script_created_or_validated_is_no_hazard() {
        let created = "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\n\
                       ALTER TABLE t ALTER COLUMN id SET NOT NULL;";
        assert_eq!(codes(Pg, created), []);
        let validated = "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID;\n\
                         ALTER TABLE t VALIDATE CONSTRAINT c;\n\
                         ALTER TABLE t ALTER COLUMN a SET NOT NULL;";
        assert_eq!(codes(Pg, validated), []);
        // A table rebuilt (new table, copy, drop, rename) or one the script made is not lost.
        let rebuild = "CREATE TABLE p_new (id int);\nINSERT INTO p_new SELECT id FROM p;\n\
                       DROP TABLE p;\nALTER TABLE p_new RENAME TO p;";
        assert_eq!(codes(Lite, rebuild), []);
        assert_eq!(codes(Pg, "CREATE TABLE s (a int);\nDROP TABLE s;"), []);
        assert_eq!(codes(My, "DROP TABLE p;\nRENAME TABLE p_new TO p;"), []);
        assert_eq!(
            codes(Pg, "DROP TABLE p;\nALTER TABLE q RENAME TO r;"),
            [DropTable]
        );
        let script = parse_script("SELECT 1;\n\nDROP TABLE a;", Pg).unwrap();
        assert_eq!(
            script.findings,
            [Finding {
                code: DropTable,
                line: 3,
                blocks: true,
            }]
        );
        assert!(script.destructive && !script.allow_destructive);
        let marked = parse_script("-- avocet:allow-destructive\nDROP TABLE a;", Pg).unwrap();
        assert!(marked.destructive && marked.allow_destructive);
    }
}

#[cfg(test)]
mod samples {
    use crate::{catalog::load_dir, model::DialectKind};

    #[test]
    fn the_sample_sets_apply_without_accepting_data_loss() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for (dir, dialect) in [
            ("postgres", DialectKind::Postgres),
            ("mysql", DialectKind::Mysql),
            ("sqlite", DialectKind::Sqlite),
        ] {
            let set = load_dir(&root.join(dir), dialect, crate::model::SetFormat::Auto).unwrap();
            for m in set.iter() {
                let codes: Vec<_> = m.up.findings.iter().map(|f| f.code.as_str()).collect();
                assert!(!m.up.destructive, "{dir} {}: {codes:?}", m.version);
            }
        }
    }
}
