//! The lint's tests: each code on the statements that raise it and on those that must not.

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

/// The sample sets under `migrations/`.
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
