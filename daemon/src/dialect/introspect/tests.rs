//! The rows-to-model folds without a server.

use super::{generated, mysql, postgres, sqlite};

fn row(cols: &[Option<&str>]) -> Vec<Option<String>> {
    cols.iter().map(|c| c.map(str::to_owned)).collect()
}

#[test]
fn generated_names_are_told_from_chosen_ones() {
    let pg = &["pkey", "key", "fkey", "check", "idx"];
    assert!(generated("accounts_pkey", "accounts", pg));
    assert!(generated("users_email_key", "users", pg));
    assert!(generated("orders_total_check1", "orders", pg));
    assert!(!generated("users_email_unique", "users", pg));
    assert!(!generated("pkey", "accounts", pg));
    assert!(generated("orders_ibfk_2", "orders", &["ibfk"]));
}

#[test]
fn postgres_index_order_and_include_columns_are_kept() {
    let m = postgres::build(vec![
        row(&[Some("t"), Some("users")]),
        row(&[
            Some("i"),
            Some("users"),
            Some("users_email_idx"),
            Some("false"),
            Some("btree"),
            Some("deleted_at IS NULL"),
            Some("2"),
            Some("0 3"),
            Some("lower(email)\u{1f}created_at\u{1f}id"),
        ]),
    ]);
    let i = &m.tables["users"].indexes["users_email_idx"];
    assert_eq!(i.keys, ["lower(email)", "created_at DESC"]);
    assert_eq!(i.include, ["id"]);
    assert_eq!(i.predicate.as_deref(), Some("deleted_at IS NULL"));
    assert!(i.generated_name);
}

#[test]
fn mysql_views_lose_their_database_name_and_keys_become_constraints() {
    let m = mysql::build(
        vec![
            row(&[
                Some("t"),
                Some("t"),
                Some("BASE TABLE"),
                Some("utf8mb4_general_ci"),
            ]),
            row(&[
                Some("i"),
                Some("t"),
                Some("PRIMARY"),
                Some("0"),
                Some("id"),
                Some("A"),
                None,
                Some("BTREE"),
            ]),
            row(&[
                Some("i"),
                Some("t"),
                Some("t_email"),
                Some("1"),
                Some("email"),
                Some("A"),
                Some("10"),
                Some("BTREE"),
            ]),
            row(&[Some("k"), Some("t"), Some("PRIMARY"), Some("PRIMARY KEY")]),
            row(&[
                Some("v"),
                Some("v"),
                Some("select `tenant_7`.`t`.`id` AS `id` from `tenant_7`.`t`"),
                Some("NONE"),
                Some("DEFINER"),
            ]),
        ],
        "tenant_7",
    );
    assert_eq!(m.views["v"].definition, "select `t`.`id` AS `id` from `t`");
    let t = &m.tables["t"];
    assert_eq!(t.constraints["PRIMARY"].definition, "PRIMARY KEY (`id`)");
    assert_eq!(t.indexes["t_email"].keys, ["`email`(10)"]);
}

#[test]
fn sqlite_checks_and_views_are_read_from_their_text_whatever_its_spacing() {
    let table = |sql: &str| {
        sqlite::build(vec![
            row(&[Some("m"), Some("t"), Some("table"), Some("t"), Some(sql)]),
            row(&[
                Some("m"),
                Some("v"),
                Some("view"),
                Some("v"),
                Some("CREATE VIEW v AS SELECT   id\n FROM t WHERE total>0"),
            ]),
        ])
    };
    let a = table(
        "CREATE TABLE t (id INTEGER, total INT CHECK (total >= 0), CONSTRAINT named CHECK (id > 0))",
    );
    let b = table(
        "create table t (\n  id integer,\n  total int check(total>=0),\n  constraint named check(id>0))",
    );
    assert_eq!(a.tables["t"].constraints, b.tables["t"].constraints);
    assert!(a.tables["t"].constraints.contains_key("named"));
    assert!(a.tables["t"].constraints.contains_key("check (total >= 0)"));
    assert_eq!(a.views["v"].definition, "SELECT id FROM t WHERE total > 0");
}
