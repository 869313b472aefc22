//! Each format's directory, laid out as its tool documents it, read through `load_dir`.

use std::path::Path;

use crate::{
    catalog::{CatalogError, load_dir},
    model::{DialectKind, MigrationSet, SetFormat},
};

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn load(dir: &Path, format: SetFormat) -> Result<MigrationSet, CatalogError> {
    load_dir(dir, DialectKind::Postgres, format)
}

fn detected(dir: &Path) -> SetFormat {
    super::detect(dir).unwrap()
}

fn summary(set: &MigrationSet) -> Vec<(i64, String, bool, Option<bool>)> {
    set.iter()
        .map(|m| {
            (
                m.version.as_i64().expect("an integer version"),
                m.name.clone(),
                m.up.no_transaction,
                m.down.as_ref().map(|d| d.no_transaction),
            )
        })
        .collect()
}

#[test]
fn diesel_directories_with_dashed_versions_and_metadata() {
    let dir = dir_with(&[
        ("00000000000000_diesel_initial_setup/up.sql", "SELECT 0;"),
        ("00000000000000_diesel_initial_setup/down.sql", "SELECT 0;"),
        (
            "2024-03-13-170000_create_users/up.sql",
            "CREATE TABLE users (id int);",
        ),
        (
            "2024-03-13-170000_create_users/down.sql",
            "DROP TABLE users;",
        ),
        (
            "2024-03-14-090000-0000_index/up.sql",
            "CREATE INDEX CONCURRENTLY i ON users (id);",
        ),
        ("2024-03-14-090000-0000_index/down.sql", "DROP INDEX i;"),
        (
            "2024-03-14-090000-0000_index/metadata.toml",
            "run_in_transaction = false\n",
        ),
        ("notes/README.md", "not a migration"),
        (".keep", ""),
        ("0004_stray.up.sql", "SELECT 4;"),
    ]);
    assert_eq!(detected(dir.path()), SetFormat::Diesel);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    assert_eq!(
        summary(&set),
        [
            (0, "diesel_initial_setup".into(), false, Some(false)),
            (20240313170000, "create_users".into(), false, Some(false)),
            (202403140900000000, "index".into(), true, Some(true)),
        ]
    );
    assert_eq!(set.warnings().len(), 2, "{:?}", set.warnings());
    assert!(
        set.warnings()[0].contains("0004_stray.up.sql"),
        "{:?}",
        set.warnings()
    );
    assert!(set.warnings()[1].contains("notes"), "{:?}", set.warnings());

    let bad = dir_with(&[
        ("1_a/up.sql", "SELECT 1;"),
        ("1_a/metadata.toml", "run = 1\n"),
    ]);
    let err = load(bad.path(), SetFormat::Diesel).unwrap_err();
    assert!(
        matches!(err, CatalogError::Format { .. }) && err.to_string().contains("metadata.toml"),
        "{err}"
    );
    let bad = dir_with(&[("2024-xx_a/up.sql", "SELECT 1;")]);
    let err = load(bad.path(), SetFormat::Diesel).unwrap_err();
    assert!(err.to_string().contains("2024-xx_a"), "{err}");
}

#[test]
fn dbmate_sections_keep_the_file_lines_and_their_transaction_option() {
    let text = "-- migrate:up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n\n\
                -- migrate:down\nDROP TABLE b;\nDROP TABLE a;\n";
    let dir = dir_with(&[
        ("20151129054053_test_migration.sql", text),
        (
            "20151129054054_index.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON a (id);\n\
             -- migrate:down\n",
        ),
    ]);
    assert_eq!(detected(dir.path()), SetFormat::Dbmate);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    assert_eq!(
        summary(&set),
        [
            (20151129054053, "test_migration".into(), false, Some(false)),
            (20151129054054, "index".into(), true, Some(false)),
        ]
    );
    // Each section holds its own statements only (a statement's text keeps the comments
    // before it, here the section's marker).
    let first = set.get(20151129054053).unwrap();
    let up: Vec<&str> = first.up.statements().collect();
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(up[0].ends_with("CREATE TABLE a (id int)") && up[1] == "CREATE TABLE b (id int)");
    let down = first.down.as_ref().unwrap();
    let stmts: Vec<&str> = down.statements().collect();
    assert_eq!(stmts.len(), 2, "{stmts:?}");
    assert!(stmts[0].ends_with("DROP TABLE b") && stmts[1] == "DROP TABLE a");
    assert_eq!(
        down.spans[0].line, 6,
        "a down statement keeps its line in the file"
    );
    let empty_down = set.get(20151129054054).unwrap().down.as_ref().unwrap();
    assert_eq!(
        empty_down.statement_count(),
        0,
        "dbmate's empty down runs nothing"
    );

    let no_up = dir_with(&[("1_a.sql", "CREATE TABLE a (id int);")]);
    let err = load(no_up.path(), SetFormat::Dbmate).unwrap_err();
    assert!(err.to_string().contains("-- migrate:up"), "{err}");
}

#[test]
fn flyway_versions_undo_files_and_conf() {
    let dir = dir_with(&[
        (
            "V1__Create_person_table.sql",
            "CREATE TABLE person (id int);",
        ),
        ("U1__Create_person_table.sql", "DROP TABLE person;"),
        (
            "V2__Add_index.sql",
            "CREATE INDEX CONCURRENTLY i ON person (id);",
        ),
        (
            "V2__Add_index.sql.conf",
            "# flyway\nexecuteInTransaction=false\n",
        ),
        ("V10__Later.sql", "SELECT 10;"),
    ]);
    assert_eq!(detected(dir.path()), SetFormat::Flyway);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    assert_eq!(
        summary(&set),
        [
            (1, "Create_person_table".into(), false, Some(false)),
            (2, "Add_index".into(), true, None),
            (10, "Later".into(), false, None),
        ]
    );
    for (file, says) in [
        ("V1..2__dotted.sql", "not a version"),
        ("V1.2.3.4.5.6.7__deep.sql", "more than 6 parts"),
    ] {
        let dir = dir_with(&[(file, "SELECT 1;")]);
        let err = load(dir.path(), SetFormat::Flyway).unwrap_err();
        assert!(
            err.to_string().contains(file) && err.to_string().contains(says),
            "{err}"
        );
    }
    let orphan = dir_with(&[("V1__a.sql", "SELECT 1;"), ("U2__b.sql", "SELECT 2;")]);
    let err = load(orphan.path(), SetFormat::Flyway).unwrap_err();
    assert!(
        matches!(err, CatalogError::DownWithoutUp { ref version, .. } if *version == 2),
        "{err}"
    );
}

#[test]
fn flyway_repeatables_load_after_every_version_in_description_order() {
    let dir = dir_with(&[
        ("R__views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1;"),
        ("V2__b.sql", "SELECT 2;"),
        ("R__functions.sql", "CREATE INDEX CONCURRENTLY i ON a (id);"),
        ("R__functions.sql.conf", "executeInTransaction=false\n"),
        ("V1.1__a.sql", "SELECT 11;"),
    ]);
    assert_eq!(detected(dir.path()), SetFormat::Flyway);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    let order: Vec<(String, &str, bool)> = set
        .iter()
        .map(|m| (m.version.to_string(), m.name.as_str(), m.up.no_transaction))
        .collect();
    assert_eq!(
        order,
        [
            ("1.1".into(), "a", false),
            ("2".into(), "b", false),
            ("R__functions".into(), "functions", true),
            ("R__views".into(), "views", false),
        ]
    );
    assert_eq!(set.latest().map(|v| v.to_string()), Some("2".into()));
    for (file, says) in [
        ("R1__numbered.sql", "R__<description>.sql"),
        (&*format!("R__{}.sql", "x".repeat(126)), "at most 128 bytes"),
    ] {
        let dir = dir_with(&[(file, "SELECT 1;")]);
        let err = load(dir.path(), SetFormat::Flyway).unwrap_err();
        assert!(
            err.to_string().contains(file) && err.to_string().contains(says),
            "{err}"
        );
    }
    let dir = dir_with(&[("V1__a.sql", "SELECT 1;"), ("R__views.sql", "SELECT 1;")]);
    let err = load(dir.path(), SetFormat::Refinery).unwrap_err();
    assert!(err.to_string().contains("no repeatable"), "{err}");
    for twins in [
        [("R__Views.sql", "SELECT 1;"), ("R__views.sql", "SELECT 2;")],
        [
            ("R__my_views.sql", "SELECT 1;"),
            ("R__My views.sql", "SELECT 2;"),
        ],
    ] {
        let dir = dir_with(&twins);
        let err = load(dir.path(), SetFormat::Flyway).unwrap_err();
        assert!(
            err.to_string().contains("only in case or underscores"),
            "{err}"
        );
    }
    let dir = dir_with(&[("R__views .sql", "SELECT 1;")]);
    let err = load(dir.path(), SetFormat::Flyway).unwrap_err();
    assert!(err.to_string().contains("whitespace"), "{err}");
}

#[test]
fn flyway_dotted_versions_order_part_by_part_and_keep_their_undo() {
    let dir = dir_with(&[
        ("V1__a.sql", "SELECT 1;"),
        ("V1.10__j.sql", "SELECT 110;"),
        ("V1_2__b.sql", "SELECT 12;"),
        ("U1_2__b.sql", "SELECT -12;"),
        ("V1.2.1__c.sql", "SELECT 121;"),
        ("V2__d.sql", "SELECT 2;"),
    ]);
    let set = load(dir.path(), SetFormat::Flyway).unwrap();
    let order: Vec<(String, &str, bool)> = set
        .iter()
        .map(|m| (m.version.to_string(), m.name.as_str(), m.down.is_some()))
        .collect();
    assert_eq!(
        order,
        [
            ("1".into(), "a", false),
            ("1.2".into(), "b", true),
            ("1.2.1".into(), "c", false),
            ("1.10".into(), "j", false),
            ("2".into(), "d", false),
        ]
    );
    // Flyway reads `1.0` as version 1: two files for one version.
    let twice = dir_with(&[("V1__a.sql", "SELECT 1;"), ("V1.0__b.sql", "SELECT 1;")]);
    let err = load(twice.path(), SetFormat::Flyway).unwrap_err();
    assert!(
        matches!(err, CatalogError::DuplicateVersion { .. }),
        "{err}"
    );
    // refinery's versions stay integers.
    let dir = dir_with(&[("V1.2__dotted.sql", "SELECT 1;")]);
    let err = load(dir.path(), SetFormat::Refinery).unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
}

#[test]
fn refinery_marker_is_its_directive_and_unversioned_files_run_unordered() {
    let dir = dir_with(&[
        ("V1__initial.sql", "CREATE TABLE a (id int);"),
        (
            "V2__index.sql",
            "-- refinery:noTransaction\nCREATE INDEX CONCURRENTLY i ON a (id);",
        ),
    ]);
    assert_eq!(detected(dir.path()), SetFormat::Refinery);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    assert_eq!(
        summary(&set),
        [
            (1, "initial".into(), false, None),
            (2, "index".into(), true, None),
        ]
    );
    // Under Flyway's rules the refinery line is only a comment.
    let flyway = load(dir.path(), SetFormat::Flyway).unwrap();
    assert!(!flyway.get(2).unwrap().up.no_transaction);
    let unversioned = dir_with(&[("U1__a.sql", "SELECT 1;"), ("V2__b.sql", "SELECT 2;")]);
    let set = load(unversioned.path(), SetFormat::Refinery).unwrap();
    let kinds: Vec<(String, bool)> = set
        .iter()
        .map(|m| (m.version.to_string(), m.unordered))
        .collect();
    assert_eq!(kinds, [("1".into(), true), ("2".into(), false)]);
    assert!(set.get(1).unwrap().down.is_none());
    // One version, twice: refinery's RepeatedVersion.
    let twice = dir_with(&[("U1__a.sql", "SELECT 1;"), ("V1__b.sql", "SELECT 2;")]);
    let err = load(twice.path(), SetFormat::Refinery).unwrap_err();
    assert!(
        matches!(err, CatalogError::DuplicateVersion { .. }),
        "{err}"
    );
}

#[test]
fn golang_migrate_pairs_and_no_single_files() {
    let dir = dir_with(&[
        (
            "1_create_users_table.up.sql",
            "CREATE TABLE users (id int);",
        ),
        ("1_create_users_table.down.sql", "DROP TABLE users;"),
        (
            "1500360784_add_email.up.sql",
            "ALTER TABLE users ADD COLUMN email text;",
        ),
        (
            "1500360784_add_email.down.sql",
            "ALTER TABLE users DROP COLUMN email;",
        ),
    ]);
    assert_eq!(
        detected(dir.path()),
        SetFormat::Sqlx,
        "the same layout as sqlx's"
    );
    let set = load(dir.path(), SetFormat::GolangMigrate).unwrap();
    let versions: Vec<i64> = set.iter().filter_map(|m| m.version.as_i64()).collect();
    assert_eq!(versions, [1, 1500360784]);
    let single = dir_with(&[("1_a.sql", "SELECT 1;")]);
    let err = load(single.path(), SetFormat::GolangMigrate).unwrap_err();
    assert!(err.to_string().contains("golang-migrate"), "{err}");
    assert!(load(single.path(), SetFormat::Sqlx).is_ok());
}
